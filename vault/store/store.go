// Package store persists authpipe-proxy's state with gorm on PostgreSQL (production) or
// SQLite (the pure-Go dev default): workspaces, wrapped DEKs, API keys, providers,
// connections, sealed credentials and the audit chain.
//
// It stores ciphertext only; sealing and opening is the vault's job. Every change that the
// audit log records is written in the same transaction as its audit event, so a change
// without its event (or an event without its change) cannot be committed. Schema changes
// are versioned SQL migrations per dialect (goose), embedded in the binary: never AutoMigrate.
package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
)

//go:embed migrations
var migrations embed.FS

// Dialect names.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// ErrUnavailable wraps any failure to reach the database: callers answer 503
// database_unavailable and retry later.
var ErrUnavailable = problem.Sentinel(problem.ErrDatabaseUnavailable, "store: database unavailable")

// ErrConflict: a unique constraint or a compare-and-swap failed (409 conflict).
var ErrConflict = problem.Sentinel(problem.ErrConflict, "store: conflict")

// ErrNotFound is vault.ErrNotFound, so that the vault's DEK lookups and the store agree.
var ErrNotFound = vault.ErrNotFound

// Store is the persistence layer. It is safe for concurrent use.
type Store struct {
	db      *gorm.DB
	dialect string
	now     func() time.Time
	log     *slog.Logger

	connTTL    time.Duration // the sealed-row cache's TTL (conncache.go); 0 turns it off
	conns      *connCache
	stopListen context.CancelFunc
	listenDone chan struct{}
	listens    atomic.Uint64 // times the listener listened and heard its probe (each turns the cache on, empty)
	listenURL  string        // WithListenURL: a direct connection for LISTEN behind a pooler
	invalidate atomic.Int32  // how the cache learns of other replicas' writes (Invalidation)
}

// Option configures a Store.
type Option func(*Store)

// WithClock injects the clock.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithConnCacheTTL sets how long the hot path's sealed-row cache (conncache.go) may keep a
// row: at most a second (longer is cut to a second); 0 turns the cache off.
func WithConnCacheTTL(d time.Duration) Option {
	return func(s *Store) { s.connTTL = max(0, min(d, connCacheTTL)) }
}

// WithListenURL names the PostgreSQL connection that the sealed-row cache's listener uses
// (AUTHPIPE_DATABASE_LISTEN_URL): a direct one to the same database when the database URL
// goes through a transaction-pooling PgBouncer, which cannot carry LISTEN. "" = the
// database URL.
func WithListenURL(u string) Option { return func(s *Store) { s.listenURL = u } }

// Open connects to the database that url names (sqlite://path or postgres://...). It does
// not migrate; call Migrate. Open does not fail when a PostgreSQL server is down: the pool
// connects lazily and Ping reports it.
func Open(ctx context.Context, databaseURL string, opts ...Option) (*Store, error) {
	s := &Store{now: time.Now, log: slog.New(slog.DiscardHandler), connTTL: connCacheTTL}
	for _, o := range opts {
		o(s)
	}
	var listenDSN string
	cfg := &gorm.Config{
		Logger:                 logger.Discard, // gorm's logger prints SQL parameters: ciphertext, hashes
		NowFunc:                func() time.Time { return s.now().UTC() },
		SkipDefaultTransaction: true,
		TranslateError:         true,
		DisableAutomaticPing:   true, // a database that is down at start-up must not stop the server
	}
	switch {
	case strings.HasPrefix(databaseURL, "sqlite://"):
		path := strings.TrimPrefix(databaseURL, "sqlite://")
		if path == "" {
			return nil, fmt.Errorf("store: sqlite URL has no path")
		}
		if path != ":memory:" {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, fmt.Errorf("store: %w", err)
			}
		}
		// WAL for concurrent readers; immediate transactions so writers queue on the
		// busy timeout instead of failing to upgrade a read lock; foreign keys on.
		dsn := path + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		db, err := gorm.Open(sqlite.Open(dsn), cfg)
		if err != nil {
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		s.db, s.dialect = db, SQLite
		s.conns = newConnCache(s.connTTL, time.Now, true) // one process: in-process invalidation
		if s.connTTL > 0 {
			s.invalidate.Store(int32(InvalidationProcess))
		}
		sqlDB, _ := db.DB()
		// One writer at a time is what SQLite does anyway; a single connection also keeps
		// ":memory:" databases whole.
		sqlDB.SetMaxOpenConns(1)
		if path != ":memory:" {
			_ = os.Chmod(path, 0o600)
		}
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		dsn, err := withConnectTimeout(databaseURL)
		if err != nil {
			return nil, err
		}
		listenDSN = dsn
		if s.listenURL != "" {
			if !strings.HasPrefix(s.listenURL, "postgres://") && !strings.HasPrefix(s.listenURL, "postgresql://") {
				return nil, fmt.Errorf("store: the listen URL must be a postgres:// URL")
			}
			if listenDSN, err = withConnectTimeout(s.listenURL); err != nil {
				return nil, err
			}
		}
		db, err := gorm.Open(postgres.New(postgres.Config{DSN: dsn}), cfg)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		s.db, s.dialect = db, Postgres
		s.conns = newConnCache(s.connTTL, time.Now, false) // on once the listener is connected
		sqlDB, _ := db.DB()
		sqlDB.SetMaxOpenConns(32)
		sqlDB.SetMaxIdleConns(16)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	default:
		return nil, fmt.Errorf("store: unsupported database URL scheme (want sqlite:// or postgres://)")
	}
	if err := s.registerConnCacheCallbacks(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := s.registerTracingCallbacks(); err != nil { // tracing.go
		return nil, fmt.Errorf("store: %w", err)
	}
	if listenDSN != "" && s.connTTL > 0 {
		lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		s.stopListen, s.listenDone = cancel, make(chan struct{})
		go func() { defer close(s.listenDone); s.listenConnections(lctx, listenDSN) }()
	}
	return s, nil
}

// withConnectTimeout makes sure a dead server fails a connection attempt within seconds.
func withConnectTimeout(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("store: malformed postgres URL")
	}
	q := u.Query()
	if q.Get("connect_timeout") == "" {
		q.Set("connect_timeout", "3")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Dialect returns Postgres or SQLite.
func (s *Store) Dialect() string { return s.dialect }

// DB exposes the gorm handle for the store's own tests and tools.
func (s *Store) DB() *gorm.DB { return s.db }

// Close stops the cache listener and closes the pool.
func (s *Store) Close() error {
	if s.stopListen != nil {
		s.stopListen()
		<-s.listenDone
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Migrate applies every pending migration. It is idempotent.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, err
	}
	dialect := goose.DialectSQLite3
	if s.dialect == Postgres {
		dialect = goose.DialectPostgres
	}
	sub, err := fs.Sub(migrations, "migrations/"+s.dialect)
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(dialect, sqlDB, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", s.classify(err))
	}
	var applied []string
	for _, r := range res {
		applied = append(applied, r.Source.Path)
	}
	return applied, nil
}

// tx runs fn in a transaction on ctx.
func (s *Store) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	ctx, mark := withTxMark(ctx)
	err := s.db.WithContext(ctx).Transaction(fn)
	if mark.touched.Load() { // committed or rolled back: a read since the write may have refilled
		s.conns.evictAll()
	}
	return s.classify(err)
}

// forUpdate adds FOR UPDATE on PostgreSQL; SQLite's immediate transactions already hold
// the write lock.
func (s *Store) forUpdate(q *gorm.DB) *gorm.DB {
	if s.dialect == Postgres {
		return q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return q
}

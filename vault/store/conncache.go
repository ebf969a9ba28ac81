package store

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/ids"
)

// The sealed-row cache of the token hot path (DESIGN.md "The hot path"): ConnectionWithCredential
// keeps the connection row and its SEALED credential (ciphertext only; plaintext is never
// cached) for at most connCacheTTL, keyed by connection id. It is kept correct by:
//
//   - same-process writes: a gorm callback on every write to connections, credentials or
//     workspaces (models and raw SQL alike) empties the cache when the statement has run,
//     and again when the Store's transaction that made it has committed (a transaction
//     opened through DB() instead, whose commit the store does not see, stops fills for
//     a TTL);
//   - other replicas (PostgreSQL): a trigger (migration 00008) NOTIFYs authpipe_connections
//     with the connection id after every insert, update or delete of either table, and a
//     listener on a dedicated connection evicts that id. While the listener is not
//     connected (not yet, or lost), the cache is OFF: every read goes to the database, and
//     when it (re)connects the cache starts empty, since notifications may have been missed.
//     It counts as connected once a probe it sends itself through the pool has arrived:
//     behind a transaction-pooling PgBouncer LISTEN "succeeds" and delivers nothing, so
//     without a direct AUTHPIPE_DATABASE_LISTEN_URL (WithListenURL) the cache runs on its
//     TTL alone (InvalidationTTL) and tries LISTEN again every listenRetryTTL;
//   - fills that raced a write: the cache's generation is read before the query and the row
//     is kept only if no invalidation happened in between;
//   - the TTL, as the backstop of last resort (a listener silently cut off).
//
// SQLite is one process (dev): in-process invalidation only.

// ConnCacheChannel is the PostgreSQL notification channel of connection writes.
const ConnCacheChannel = "authpipe_connections"

const (
	connCacheTTL = time.Second
	connCacheMax = 100_000 // rows; a full cache is emptied, never grown past this
)

type connCacheEntry struct {
	cc      ConnectionCredential
	expires time.Time
}

// connCache is the sealed-row cache. The zero value is off.
type connCache struct {
	ttl time.Duration
	now func() time.Time

	mu     sync.RWMutex
	on     bool      // false while the PostgreSQL listener is not connected
	gen    uint64    // bumped by every invalidation
	paused time.Time // no fills before then (a write in a transaction the store did not open)
	m      map[string]connCacheEntry
}

func newConnCache(ttl time.Duration, now func() time.Time, on bool) *connCache {
	return &connCache{ttl: ttl, now: now, on: on && ttl > 0, m: map[string]connCacheEntry{}}
}

// get returns a copy of the cached row of workspaceID's connection id.
func (c *connCache) get(workspaceID, id string) (ConnectionCredential, bool) {
	c.mu.RLock()
	e, ok := c.m[id]
	on := c.on
	c.mu.RUnlock()
	if !on || !ok || e.cc.WorkspaceID != workspaceID || !c.now().Before(e.expires) {
		return ConnectionCredential{}, false
	}
	return cloneConnCred(e.cc), true
}

// generation is read before the query whose result put may keep.
func (c *connCache) generation() (uint64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen, c.on
}

// put keeps cc if the cache is on and nothing was invalidated since gen was read.
func (c *connCache) put(gen uint64, cc ConnectionCredential) {
	now := c.now()
	e := connCacheEntry{cc: cloneConnCred(cc), expires: now.Add(c.ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on || c.gen != gen || now.Before(c.paused) {
		return
	}
	if len(c.m) >= connCacheMax {
		clear(c.m)
	}
	c.m[cc.ID] = e
}

// evict drops one connection's row.
func (c *connCache) evict(id string) {
	c.mu.Lock()
	c.gen++
	delete(c.m, id)
	c.mu.Unlock()
}

// evictAll empties the cache.
func (c *connCache) evictAll() {
	c.mu.Lock()
	c.gen++
	clear(c.m)
	c.mu.Unlock()
}

// pause empties the cache and keeps it from filling for a TTL: after a write in a
// transaction whose commit the store does not see, until that commit has (most likely)
// happened; on PostgreSQL the commit's notification evicts again.
func (c *connCache) pause() {
	until := c.now().Add(c.ttl)
	c.mu.Lock()
	c.gen++
	clear(c.m)
	if until.After(c.paused) {
		c.paused = until
	}
	c.mu.Unlock()
}

// setOn turns the cache on or off; either way it starts empty.
func (c *connCache) setOn(on bool) {
	c.mu.Lock()
	c.gen++
	c.on = on && c.ttl > 0
	clear(c.m)
	c.mu.Unlock()
}

func (c *connCache) isOn() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.on
}

// cloneConnCred copies every slice, so that a caller cannot change a cached row.
func cloneConnCred(cc ConnectionCredential) ConnectionCredential {
	out := cc
	out.Scopes = slices.Clone(cc.Scopes)
	if cc.Credential != nil {
		cr := *cc.Credential
		cr.AccessToken, cr.RefreshToken, cr.APIKey = slices.Clone(cr.AccessToken), slices.Clone(cr.RefreshToken), slices.Clone(cr.APIKey)
		cr.GrantSecret = slices.Clone(cr.GrantSecret)
		out.Credential = &cr
	}
	return out
}

// InvalidateConnection drops connection id's sealed row from this process's cache. The
// Store's own writes already do this (and the PostgreSQL trigger tells other replicas);
// call it after writing the connections or credentials tables by other means.
func (s *Store) InvalidateConnection(id string) {
	if s.conns != nil {
		s.conns.evict(id)
	}
}

// InvalidateConnections empties this process's sealed-row cache.
func (s *Store) InvalidateConnections() {
	if s.conns != nil {
		s.conns.evictAll()
	}
}

// ConnCacheOn reports whether the sealed-row cache is serving (on PostgreSQL: whether the
// invalidation listener is connected).
func (s *Store) ConnCacheOn() bool { return s.conns != nil && s.conns.isOn() }

// cachedTables are the tables whose writes invalidate the cache (workspaces: a deletion
// cascades to connections without a statement of its own).
var cachedTables = []string{"connections", "credentials", "workspaces"}

// rawWrite matches raw SQL that writes one of cachedTables.
var rawWrite = regexp.MustCompile(`(?i)\b(update|insert\s+into|delete\s+from|truncate(\s+table)?|alter\s+table)\s+(only\s+)?"?(connections|credentials|workspaces)\b`)

type txMarkKey struct{}

// txMark records that a Store transaction wrote a cached table, so that s.tx empties the
// cache again once it has committed (a read between the statement and the commit may
// have refilled it from the old row).
type txMark struct{ touched atomic.Bool }

// withTxMark is the context s.tx runs its transaction under.
func withTxMark(ctx context.Context) (context.Context, *txMark) {
	m := &txMark{}
	return context.WithValue(ctx, txMarkKey{}, m), m
}

// registerConnCacheCallbacks hooks every gorm processor that can write.
func (s *Store) registerConnCacheCallbacks() error {
	cb := s.db.Callback()
	const name = "authpipe:conncache"
	if err := cb.Create().After("gorm:create").Register(name, s.afterWrite); err != nil {
		return err
	}
	if err := cb.Update().After("gorm:update").Register(name, s.afterWrite); err != nil {
		return err
	}
	if err := cb.Delete().After("gorm:delete").Register(name, s.afterWrite); err != nil {
		return err
	}
	if err := cb.Raw().After("gorm:raw").Register(name, s.afterRaw); err != nil {
		return err
	}
	if err := cb.Row().After("gorm:row").Register(name, s.afterRaw); err != nil {
		return err
	}
	return cb.Query().After("gorm:query").Register(name, s.afterRaw)
}

// afterWrite invalidates after a model write to a cached table.
func (s *Store) afterWrite(db *gorm.DB) {
	table := db.Statement.Table
	if table == "" && db.Statement.Schema != nil {
		table = db.Statement.Schema.Table
	}
	if f := strings.Fields(table); len(f) > 0 && slices.Contains(cachedTables, strings.Trim(f[0], `"`)) {
		s.invalidateFrom(db)
	}
}

// afterRaw invalidates after raw SQL that writes a cached table. A plain SELECT (the
// common case by far) is not scanned.
func (s *Store) afterRaw(db *gorm.DB) {
	sql := strings.TrimSpace(db.Statement.SQL.String())
	if len(sql) >= 6 && strings.EqualFold(sql[:6], "select") && !strings.Contains(sql, ";") {
		return
	}
	if rawWrite.MatchString(sql) {
		s.invalidateFrom(db)
	}
}

func (s *Store) invalidateFrom(db *gorm.DB) {
	if ctx := db.Statement.Context; ctx != nil {
		if m, ok := ctx.Value(txMarkKey{}).(*txMark); ok {
			m.touched.Store(true) // s.tx empties the cache again after the commit
			s.conns.evictAll()
			return
		}
	}
	if _, inTx := db.Statement.ConnPool.(gorm.TxCommitter); inTx {
		s.conns.pause() // someone else's transaction: no fills until it has committed
		return
	}
	s.conns.evictAll() // autocommit: the write is already committed
}

// Invalidation is how the sealed-row cache learns of other replicas' writes (/readyz
// reports it as cache_invalidation).
type Invalidation int32

// Invalidation modes.
const (
	// InvalidationNone: the cache is off (turned off, or the PostgreSQL listener is not
	// connected); every read goes to the database.
	InvalidationNone Invalidation = iota
	// InvalidationProcess: SQLite, one process; its own writes invalidate.
	InvalidationProcess
	// InvalidationListen: a listener receives every replica's writes by NOTIFY.
	InvalidationListen
	// InvalidationTTL: LISTEN does not deliver on the listener's connection (a
	// transaction-pooling PgBouncer and no AUTHPIPE_DATABASE_LISTEN_URL): another
	// replica's write is seen once the cached row's TTL (at most 1 s) has run out.
	InvalidationTTL
)

func (i Invalidation) String() string {
	switch i {
	case InvalidationProcess:
		return "process"
	case InvalidationListen:
		return "listen"
	case InvalidationTTL:
		return "ttl"
	}
	return "none"
}

// Invalidation reports how the sealed-row cache is kept in step with other replicas now.
func (s *Store) Invalidation() Invalidation { return Invalidation(s.invalidate.Load()) }

const (
	// listenProbeWait bounds the wait for the listener's own probe notification.
	listenProbeWait = 3 * time.Second
	// listenRetryTTL is how long the TTL fallback lasts before LISTEN is tried again.
	listenRetryTTL = 5 * time.Minute
	// probePrefix marks the listener's probe payloads (never a connection id).
	probePrefix = "probe:"
)

// listenOutcome is how one listener connection ended.
type listenOutcome int

const (
	listenFailed      listenOutcome = iota // could not connect or LISTEN
	listenLost                             // listened, then the connection failed
	listenUndelivered                      // LISTEN "worked" but its probe never arrived
)

// listenConnections keeps a dedicated connection LISTENing on ConnCacheChannel until ctx
// ends, evicting each notified id; the cache is on only while it is connected, or, when
// notifications do not arrive on that connection (a pooler), on with the TTL alone.
func (s *Store) listenConnections(ctx context.Context, dsn string) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		wait := backoff
		switch s.listenOnce(ctx, dsn) {
		case listenLost:
			backoff = 100 * time.Millisecond
			wait = backoff
			s.setInvalidation(InvalidationNone)
		case listenUndelivered:
			s.log.Warn("store: LISTEN on the database URL does not deliver notifications (a transaction-pooling PgBouncer?); "+
				"other replicas' writes reach the connection cache only through its 1 s TTL: set AUTHPIPE_DATABASE_LISTEN_URL "+
				"to a direct connection", "retry_in", listenRetryTTL.String())
			s.setInvalidation(InvalidationTTL)
			wait = listenRetryTTL
		default:
			if s.Invalidation() != InvalidationTTL { // a failed retry keeps the TTL fallback
				s.setInvalidation(InvalidationNone)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	s.setInvalidation(InvalidationNone)
}

// setInvalidation records the mode and turns the cache on (listen, ttl) or off; either
// way it starts empty.
func (s *Store) setInvalidation(m Invalidation) {
	s.invalidate.Store(int32(m))
	s.conns.setOn(m == InvalidationListen || m == InvalidationTTL)
}

// listenOnce connects, LISTENs, proves with a probe sent through the pool that
// notifications arrive, and evicts until the connection fails.
func (s *Store) listenOnce(ctx context.Context, dsn string) listenOutcome {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := pgx.Connect(cctx, dsn)
	cancel()
	if err != nil {
		s.log.Debug("store: connection cache listener cannot connect", "err", err)
		return listenFailed
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+ConnCacheChannel); err != nil {
		s.log.Debug("store: connection cache listener cannot listen", "err", err)
		return listenFailed
	}
	// The probe goes through the pool, as other replicas' writes do: behind a
	// transaction-pooling PgBouncer, LISTEN succeeds on some server connection that is
	// no longer this one's, and the probe never arrives.
	probe := probePrefix + ids.Random(12)
	pctx, cancel := context.WithTimeout(ctx, listenProbeWait)
	defer cancel()
	if err := s.db.WithContext(pctx).Exec("SELECT pg_notify(?, ?)", ConnCacheChannel, probe).Error; err != nil {
		s.log.Debug("store: connection cache listener cannot probe", "err", err)
		return listenFailed
	}
	for {
		n, err := conn.WaitForNotification(pctx)
		if err != nil {
			if ctx.Err() == nil && pctx.Err() != nil {
				// Best effort: the pooler most likely hands this connection the server
				// connection that took the LISTEN, which then stops listening.
				uctx, ucancel := context.WithTimeout(ctx, time.Second)
				_, _ = conn.Exec(uctx, "UNLISTEN *")
				ucancel()
				return listenUndelivered
			}
			return listenFailed
		}
		if n.Payload == probe {
			break
		}
		s.evictNotified(n.Payload)
	}
	s.setInvalidation(InvalidationListen) // empty: anything may have been missed while off
	s.listens.Add(1)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			s.conns.setOn(false)
			if ctx.Err() == nil {
				s.log.Warn("store: connection cache listener lost; cache off until it reconnects", "err", err)
			}
			return listenLost
		}
		s.evictNotified(n.Payload)
	}
}

// evictNotified evicts a notification's connection id (all on an empty payload; nothing
// on another replica's probe).
func (s *Store) evictNotified(payload string) {
	switch {
	case payload == "":
		s.conns.evictAll()
	case strings.HasPrefix(payload, probePrefix):
	default:
		s.conns.evict(payload)
	}
}

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
//     when it (re)connects the cache starts empty, since notifications may have been missed;
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

// listenConnections keeps a dedicated connection LISTENing on ConnCacheChannel until ctx
// ends, evicting each notified id; the cache is on only while it is connected.
func (s *Store) listenConnections(ctx context.Context, dsn string) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		connected := s.listenOnce(ctx, dsn)
		s.conns.setOn(false)
		if connected {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// listenOnce connects, LISTENs and evicts until the connection fails. It reports whether
// it got as far as listening.
func (s *Store) listenOnce(ctx context.Context, dsn string) bool {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := pgx.Connect(cctx, dsn)
	cancel()
	if err != nil {
		s.log.Debug("store: connection cache listener cannot connect", "err", err)
		return false
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+ConnCacheChannel); err != nil {
		s.log.Debug("store: connection cache listener cannot listen", "err", err)
		return false
	}
	s.conns.setOn(true) // empty: anything may have been missed while off
	s.listens.Add(1)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			s.conns.setOn(false)
			if ctx.Err() == nil {
				s.log.Warn("store: connection cache listener lost; cache off until it reconnects", "err", err)
			}
			return true
		}
		if n.Payload == "" {
			s.conns.evictAll()
		} else {
			s.conns.evict(n.Payload)
		}
	}
}

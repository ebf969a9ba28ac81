package vault

import (
	"crypto/cipher"
	"sync"
	"sync/atomic"
	"time"
)

// Cache defaults.
const (
	DefaultCacheTTL  = 15 * time.Minute
	DefaultCacheSize = 10_000

	maxSweepInterval = time.Minute
	lruGranularity   = int64(10 * time.Millisecond)
)

// cacheEntry is one unwrapped DEK. key, aead and rec never change after creation; key is
// zeroed when the entry leaves the cache.
//
// Zeroing key is all Go allows: the AES key schedule inside the cipher.Block behind aead
// (from which the key is trivially recoverable) cannot be zeroed, and neither can copies
// a KMS client library made while unwrapping. Once no goroutine uses an evicted entry, the
// garbage collector frees that memory, without overwriting it. Bounding the number of
// unwrapped keys and their lifetime is what the cache can do.
type cacheEntry struct {
	rec      DEKRecord
	key      []byte
	aead     cipher.AEAD
	expires  int64        // unix nanoseconds, from the injected clock
	lastUsed atomic.Int64 // unix nanoseconds; drives least-recently-used eviction
}

func (e *cacheEntry) zero() { clear(e.key) }

type activeKey struct {
	workspaceID string
	purpose     Purpose
}

// dekCache holds unwrapped DEKs by id, and which DEK is active per (workspace, purpose).
// Reads take the read lock only and do not allocate; everything that changes the maps
// (inserts, evictions, sweeps, Forget) takes the write lock and happens on the miss path.
//
// Eviction is exact LRU by an atomically updated last-use time, found by a linear scan
// when the cache is full: a scan of 10,000 entries costs microseconds and happens only
// next to a KMS round trip, while it keeps hits free of list manipulation and locks.
type dekCache struct {
	now func() time.Time
	ttl time.Duration
	max int

	mu     sync.RWMutex
	byID   map[string]*cacheEntry
	active map[activeKey]*cacheEntry
	// gen counts Forget calls. A load records it before reading the store and inserts
	// only if it has not moved, so a load racing with Forget cannot re-insert a key of a
	// workspace that was just shredded.
	gen uint64

	nextSweep atomic.Int64
}

func newDEKCache(now func() time.Time, ttl time.Duration, max int) *dekCache {
	return &dekCache{
		now:    now,
		ttl:    ttl,
		max:    max,
		byID:   make(map[string]*cacheEntry),
		active: make(map[activeKey]*cacheEntry),
	}
}

func (c *dekCache) sweepInterval() int64 { return int64(min(c.ttl, maxSweepInterval)) }

// hit finishes a lookup: an expired entry is a miss (the next insert or sweep zeroes it).
func (c *dekCache) hit(e *cacheEntry, now int64) *cacheEntry {
	if next := c.nextSweep.Load(); now >= next && c.nextSweep.CompareAndSwap(next, now+c.sweepInterval()) {
		c.mu.Lock()
		c.sweepLocked(now)
		c.mu.Unlock()
	}
	if e == nil || now >= e.expires {
		return nil
	}
	// Write the shared last-use time only when it is noticeably stale, so that hits on a
	// hot DEK from many cores do not all write the same cache line.
	if now-e.lastUsed.Load() >= lruGranularity {
		e.lastUsed.Store(now)
	}
	return e
}

// get looks a DEK up by an id taken from an envelope, without allocating.
func (c *dekCache) get(id []byte) *cacheEntry {
	now := c.now().UnixNano()
	c.mu.RLock()
	e := c.byID[string(id)]
	c.mu.RUnlock()
	return c.hit(e, now)
}

func (c *dekCache) getID(id string) *cacheEntry {
	now := c.now().UnixNano()
	c.mu.RLock()
	e := c.byID[id]
	c.mu.RUnlock()
	return c.hit(e, now)
}

// getActive returns the DEK that seals new values of the workspace and purpose.
func (c *dekCache) getActive(workspaceID string, purpose Purpose) *cacheEntry {
	now := c.now().UnixNano()
	c.mu.RLock()
	e := c.active[activeKey{workspaceID, purpose}]
	c.mu.RUnlock()
	return c.hit(e, now)
}

func (c *dekCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// newEntry stamps an entry with its expiry; the caller then inserts it with put.
func (c *dekCache) newEntry(rec DEKRecord, key []byte, aead cipher.AEAD) *cacheEntry {
	now := c.now().UnixNano()
	e := &cacheEntry{rec: rec, key: key, aead: aead, expires: now + int64(c.ttl)}
	e.lastUsed.Store(now)
	return e
}

// put inserts e unless Forget ran since gen was read, and returns the entry to use: a
// fresh entry already cached under the same id wins (e is then zeroed), so that
// concurrent loads converge on one key.
func (c *dekCache) put(e *cacheEntry, gen uint64) *cacheEntry {
	now := c.now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		// Forget ran meanwhile: the callers waiting for this load use it once, through
		// its AEAD, and it is never cached. Its raw key is not needed for that.
		e.zero()
		return e
	}
	if old := c.byID[e.rec.ID]; old != nil {
		if now < old.expires {
			e.zero()
			old.lastUsed.Store(now)
			return old
		}
		c.removeLocked(old)
	}
	c.sweepLocked(now)
	for len(c.byID) >= c.max {
		c.evictLRULocked()
	}
	c.byID[e.rec.ID] = e
	return e
}

// setActive records e as the active DEK of its workspace and purpose, if e is cached.
func (c *dekCache) setActive(e *cacheEntry, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.byID[e.rec.ID] != e {
		return
	}
	c.active[activeKey{e.rec.WorkspaceID, e.rec.Purpose}] = e
}

// forget drops and zeroes every DEK of the workspace.
func (c *dekCache) forget(workspaceID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, e := range c.byID {
		if e.rec.WorkspaceID == workspaceID {
			c.removeLocked(e)
		}
	}
}

func (c *dekCache) removeLocked(e *cacheEntry) {
	delete(c.byID, e.rec.ID)
	k := activeKey{e.rec.WorkspaceID, e.rec.Purpose}
	if c.active[k] == e {
		delete(c.active, k)
	}
	e.zero()
}

func (c *dekCache) sweepLocked(now int64) {
	for _, e := range c.byID {
		if now >= e.expires {
			c.removeLocked(e)
		}
	}
}

func (c *dekCache) evictLRULocked() {
	var victim *cacheEntry
	for _, e := range c.byID {
		if victim == nil || e.lastUsed.Load() < victim.lastUsed.Load() {
			victim = e
		}
	}
	if victim != nil {
		c.removeLocked(victim)
	}
}

func (c *dekCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byID)
}

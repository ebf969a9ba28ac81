// Package ratelimit keeps one token bucket per key (an API key id, a client address) in a
// bounded map. It knows nothing of HTTP: callers ask Allow, Check or Charge and render the
// refusal themselves.
package ratelimit

import (
	"container/list"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token bucket: Rate requests per second on average, Burst at once. A negative
// Rate turns the limit off.
type Limit struct {
	Rate  float64
	Burst int
}

// OrDefault returns def for the zero Limit, and l with a burst of at least one second's
// worth of requests when only the rate is set.
func (l Limit) OrDefault(def Limit) Limit {
	if l.Rate == 0 && l.Burst == 0 {
		return def
	}
	if l.Rate > 0 && l.Burst <= 0 {
		l.Burst = int(math.Max(1, math.Ceil(l.Rate)))
	}
	return l
}

// Set is one token bucket per key, at most max of them: when a new key comes to a full
// Set, the bucket of the least recently used key goes (O(1): a list in order of use and a
// map into it). A forgotten bucket starts again full, so the key evicted is the one that
// has gone longest without a request, never an active client.
type Set[K comparable] struct {
	limit Limit
	max   int
	now   func() time.Time

	mu  sync.Mutex
	m   map[K]*list.Element // of *bucket[K]
	lru list.List           // front: most recently used
}

type bucket[K comparable] struct {
	key K
	lim *rate.Limiter
}

// NewSet returns a Set of at most n (at least 1) buckets of limit l, read against the
// clock now.
func NewSet[K comparable](l Limit, n int, now func() time.Time) *Set[K] {
	return &Set[K]{limit: l, max: max(1, n), now: now, m: make(map[K]*list.Element)}
}

func (s *Set[K]) disabled() bool { return s.limit.Rate < 0 }

// Len is the number of buckets held.
func (s *Set[K]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// get returns the bucket of key, creating it (in the place of the least recently used
// bucket when the Set is full), and marks it most recently used. Callers hold s.mu.
func (s *Set[K]) get(key K) *bucket[K] {
	if e, ok := s.m[key]; ok {
		s.lru.MoveToFront(e)
		return e.Value.(*bucket[K])
	}
	if len(s.m) >= s.max {
		e := s.lru.Back()
		b := e.Value.(*bucket[K])
		delete(s.m, b.key)
		b.key = key
		b.lim = rate.NewLimiter(rate.Limit(s.limit.Rate), s.limit.Burst)
		s.lru.MoveToFront(e)
		s.m[key] = e
		return b
	}
	b := &bucket[K]{key: key, lim: rate.NewLimiter(rate.Limit(s.limit.Rate), s.limit.Burst)}
	s.m[key] = s.lru.PushFront(b)
	return b
}

// Allow takes one token; when there is none it returns how long until there will be.
func (s *Set[K]) Allow(key K) (time.Duration, bool) {
	if s.disabled() {
		return 0, true
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.get(key)
	if b.lim.AllowN(now, 1) {
		return 0, true
	}
	return s.wait(b, now), false
}

// Check reports whether key has a token left, without taking it.
func (s *Set[K]) Check(key K) (time.Duration, bool) {
	if s.disabled() {
		return 0, true
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.get(key)
	if b.lim.TokensAt(now) >= 1 {
		return 0, true
	}
	return s.wait(b, now), false
}

// Charge takes a token if there is one (a failed authentication, say).
func (s *Set[K]) Charge(key K) {
	if s.disabled() {
		return
	}
	now := s.now()
	s.mu.Lock()
	s.get(key).lim.AllowN(now, 1)
	s.mu.Unlock()
}

func (s *Set[K]) wait(b *bucket[K], now time.Time) time.Duration {
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Second
	}
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d
}

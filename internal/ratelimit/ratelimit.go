// Package ratelimit keeps one token bucket per key (an API key id, a client address) in a
// bounded map. It knows nothing of HTTP: callers ask Allow, Check or Charge and render the
// refusal themselves.
package ratelimit

import (
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

// Set is one token bucket per key, in a bounded map: idle buckets (refilled to full, so
// forgetting them changes nothing) are evicted first, and if every bucket is busy an
// arbitrary half goes.
type Set[K comparable] struct {
	limit Limit
	max   int
	now   func() time.Time

	mu sync.Mutex
	m  map[K]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// NewSet returns a Set of at most max buckets of limit l, read against the clock now.
func NewSet[K comparable](l Limit, max int, now func() time.Time) *Set[K] {
	return &Set[K]{limit: l, max: max, now: now, m: make(map[K]*bucket)}
}

func (s *Set[K]) disabled() bool { return s.limit.Rate < 0 }

// get returns the bucket of key, creating it. Callers hold s.mu.
func (s *Set[K]) get(key K, now time.Time) *bucket {
	b, ok := s.m[key]
	if !ok {
		if len(s.m) >= s.max {
			s.evict(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(s.limit.Rate), s.limit.Burst)}
		s.m[key] = b
	}
	b.last = now
	return b
}

func (s *Set[K]) evict(now time.Time) {
	idle := time.Duration(float64(s.limit.Burst)/s.limit.Rate*float64(time.Second)) + time.Second
	for k, b := range s.m {
		if now.Sub(b.last) > idle {
			delete(s.m, k)
		}
	}
	if len(s.m) < s.max {
		return
	}
	n := 0
	for k := range s.m {
		delete(s.m, k)
		if n++; n >= s.max/2 {
			break
		}
	}
}

// Allow takes one token; when there is none it returns how long until there will be.
func (s *Set[K]) Allow(key K) (time.Duration, bool) {
	if s.disabled() {
		return 0, true
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.get(key, now)
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
	b := s.get(key, now)
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
	s.get(key, now).lim.AllowN(now, 1)
	s.mu.Unlock()
}

func (s *Set[K]) wait(b *bucket, now time.Time) time.Duration {
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Second
	}
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d
}

package proxy

import (
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// RateLimit is a token bucket: Rate requests per second on average, Burst at once.
type RateLimit struct {
	Rate  float64
	Burst int
}

// Default limits (the defaults of AUTHPIPE_RATE_LIMIT_PER_KEY and _PER_IP). Per key they
// leave the hot path room (an application asks for tokens many times a second); per IP
// they bound unauthenticated traffic and key guessing.
var (
	DefaultPerKeyLimit = RateLimit{Rate: 1000, Burst: 2000}
	DefaultPerIPLimit  = RateLimit{Rate: 20, Burst: 100}
)

func (l RateLimit) orDefault(def RateLimit) RateLimit {
	if l.Rate == 0 && l.Burst == 0 {
		return def
	}
	if l.Rate > 0 && l.Burst <= 0 {
		l.Burst = int(math.Max(1, math.Ceil(l.Rate)))
	}
	return l
}

// limiterSet is one token bucket per key (an API key id or a client address), in a
// bounded map: idle buckets (refilled to full, so forgetting them changes nothing) are
// evicted first, and if every bucket is busy an arbitrary half goes.
type limiterSet[K comparable] struct {
	limit RateLimit
	max   int
	now   func() time.Time

	mu sync.Mutex
	m  map[K]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newLimiterSet[K comparable](l RateLimit, max int, now func() time.Time) *limiterSet[K] {
	return &limiterSet[K]{limit: l, max: max, now: now, m: make(map[K]*bucket)}
}

func (s *limiterSet[K]) disabled() bool { return s.limit.Rate < 0 }

// get returns the bucket of key, creating it. Callers hold s.mu.
func (s *limiterSet[K]) get(key K, now time.Time) *bucket {
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

func (s *limiterSet[K]) evict(now time.Time) {
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

// allow takes one token; when there is none it returns how long until there will be.
func (s *limiterSet[K]) allow(key K) (time.Duration, bool) {
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

// check reports whether key has a token left, without taking it.
func (s *limiterSet[K]) check(key K) (time.Duration, bool) {
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

// charge takes a token if there is one (a failed authentication).
func (s *limiterSet[K]) charge(key K) {
	if s.disabled() {
		return
	}
	now := s.now()
	s.mu.Lock()
	s.get(key, now).lim.AllowN(now, 1)
	s.mu.Unlock()
}

func (s *limiterSet[K]) wait(b *bucket, now time.Time) time.Duration {
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Second
	}
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d
}

func rateLimited(c *gin.Context, wait time.Duration) {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	fail(c, problem.ErrRateLimited.WithRetryAfter(secs))
}

// limitByIP limits unauthenticated routes (connect, callback) per client address. Put it
// first in such a route's chain, before anything touches the database.
func (s *Server) limitByIP(c *gin.Context) {
	if wait, ok := s.edge.ips.allow(clientIP(c)); !ok {
		rateLimited(c, wait)
		return
	}
	c.Next()
}

// limitAuthFailures runs before authenticate: a client address whose failed
// authentications have used up its bucket is refused before its key is hashed, and each
// 401 costs a token. Successful requests cost nothing here (the per-key limit meters them).
func (s *Server) limitAuthFailures(c *gin.Context) {
	ip := clientIP(c)
	if wait, ok := s.edge.ips.check(ip); !ok {
		rateLimited(c, wait)
		return
	}
	c.Next()
	if c.Writer.Status() == http.StatusUnauthorized || isUnauthorized(c) {
		s.edge.ips.charge(ip)
	}
}

func isUnauthorized(c *gin.Context) bool {
	for _, e := range c.Errors {
		if p := problem.From(e.Err); p.Status == http.StatusUnauthorized {
			return true
		}
	}
	return false
}

// limitByKey meters authenticated requests per API key; it runs after authenticate.
func (s *Server) limitByKey(c *gin.Context) {
	p, ok := principalOf(c)
	if !ok {
		c.Next()
		return
	}
	if wait, ok := s.edge.keys.allow(p.KeyID); !ok {
		rateLimited(c, wait)
		return
	}
	c.Next()
}

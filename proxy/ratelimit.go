package proxy

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/metrics"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/internal/ratelimit"
)

// The per-IP and per-key limits of the edge (internal/ratelimit keeps the buckets).

// Default limits (the defaults of AUTHPIPE_RATE_LIMIT_PER_KEY and _PER_IP). Per key they
// leave the hot path room (an application asks for tokens many times a second); per IP
// they bound unauthenticated traffic and key guessing.
var (
	DefaultPerKeyLimit = ratelimit.Limit{Rate: 1000, Burst: 2000}
	DefaultPerIPLimit  = ratelimit.Limit{Rate: 20, Burst: 100}
)

// The settings that change the limits, named in a 429's detail (internal/config).
const (
	settingPerKeyLimit = "AUTHPIPE_RATE_LIMIT_PER_KEY"
	settingPerIPLimit  = "AUTHPIPE_RATE_LIMIT_PER_IP"
)

// limitDetails are the details of the edge's 429s, built once: each names the limit that
// applied and the setting that changes it, never the key or the address.
type limitDetails struct {
	perKey, perIP, authFailures string
}

func newLimitDetails(perKey, perIP ratelimit.Limit) limitDetails {
	return limitDetails{
		perKey: "per-key limit " + describeLimit(perKey) + " exceeded for this API key; raise " + settingPerKeyLimit,
		perIP:  "per-IP limit " + describeLimit(perIP) + " exceeded for this client address; raise " + settingPerIPLimit,
		authFailures: "too many failed authentications from this client address (per-IP limit " + describeLimit(perIP) +
			"); raise " + settingPerIPLimit,
	}
}

// describeLimit renders a limit as the settings spell it: "1000/s, burst 2000".
func describeLimit(l ratelimit.Limit) string {
	rate, unit := l.Rate, "/s"
	if rate < 1 {
		rate, unit = rate*60, "/m"
	}
	return strconv.FormatFloat(math.Round(rate*1000)/1000, 'f', -1, 64) + unit + ", burst " + strconv.Itoa(l.Burst)
}

func rateLimited(c *gin.Context, m *metrics.Metrics, limit string, wait time.Duration, detail string) {
	m.RateLimited(limit)
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	fail(c, problem.ErrRateLimited.WithDetail(detail).WithRetryAfter(secs))
}

// limitByIP limits unauthenticated routes (connect, callback) per client address (an IPv6
// client by its /64: ratelimit.ClientPrefix). Put it first in such a route's chain, before
// anything touches the database.
func (s *Server) limitByIP(c *gin.Context) {
	if wait, ok := s.edge.ips.Allow(ratelimit.ClientPrefix(clientIP(c))); !ok {
		rateLimited(c, s.metrics, metrics.LimitPerIP, wait, s.edge.limits.perIP)
		return
	}
	c.Next()
}

// limitAuthFailures runs before authenticate: a client address whose failed
// authentications have used up its bucket is refused before its key is hashed, and each
// 401 costs a token. Successful requests cost nothing here (the per-key limit meters them).
func (s *Server) limitAuthFailures(c *gin.Context) {
	ip := ratelimit.ClientPrefix(clientIP(c))
	if wait, ok := s.edge.ips.Check(ip); !ok {
		rateLimited(c, s.metrics, metrics.LimitPerIP, wait, s.edge.limits.authFailures)
		return
	}
	c.Next()
	if c.Writer.Status() == http.StatusUnauthorized || isUnauthorized(c) {
		s.edge.ips.Charge(ip)
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
	if wait, ok := s.edge.keys.Allow(p.KeyID); !ok {
		rateLimited(c, s.metrics, metrics.LimitPerKey, wait, s.edge.limits.perKey)
		return
	}
	c.Next()
}

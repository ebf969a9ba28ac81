package proxy

import (
	"errors"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/metrics"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// tokenRoute is the hot path's route template; its requests also count as token reads.
const tokenRoute = "/v1/connections/:id/token"

// WithMetrics sets the metrics the server records into and serves on /metrics (default:
// a registry of its own). Pass the app's Metrics so that KMS and audit metrics share it.
func WithMetrics(m *metrics.Metrics) Option { return func(s *Server) { s.metrics = m } }

// Metrics returns the server's metrics.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// initMetrics registers the gauges of the server's dependencies: the audit writer's
// queue, the DEK caches of both keyrings, and the catalog.
func (s *Server) initMetrics() error {
	if s.metrics == nil {
		s.metrics = metrics.New(metrics.BuildInfo{})
	}
	all := s.providers.Catalog().All()
	names := make([]string, 0, len(all))
	for _, p := range all {
		names = append(names, p.Name)
	}
	s.metrics.SetCatalog(names)
	return errors.Join(
		s.metrics.ObserveAuditQueue(s.audit.QueueDepth),
		s.metrics.ObserveDEKCache("credentials", s.creds.CachedDEKs),
		s.metrics.ObserveDEKCache("client_secrets", s.secret.CachedDEKs),
	)
}

// markCredentialType tells the metrics middleware what a token read served.
func markCredentialType(c *gin.Context, credentialType string) {
	requestOf(c).credType = credentialType
}

// observeRequest records every request's latency by route template (never the raw
// path), method and status, and counts token reads by credential type and outcome. It
// runs first, so it sees the final status of a recovered panic too. It allocates nothing
// on a warm route.
func (s *Server) observeRequest(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = metrics.Unmatched
	}
	status := c.Writer.Status()
	s.metrics.ObserveHTTP(route, c.Request.Method, status, time.Since(start))
	if route != tokenRoute {
		return
	}
	outcome := "success"
	if status >= 400 {
		outcome = metrics.Other
		if len(c.Errors) > 0 {
			outcome = problem.From(c.Errors[0].Err).Code
		}
	}
	s.metrics.TokenRead(requestOf(c).credType, outcome)
}

// handleMetrics serves the Prometheus text format. It needs no API key, like /healthz:
// operators restrict it by network policy (the chart's NetworkPolicy), and no label
// carries a secret or an id.
func (s *Server) handleMetrics(c *gin.Context) {
	s.metrics.Handler().ServeHTTP(c.Writer, c.Request)
}

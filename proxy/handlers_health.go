package proxy

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/health"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// readyzWait bounds how long /readyz waits for checks in flight: it answers within 1 s
// (Kubernetes' default probe timeout) whatever the dependencies do.
const readyzWait = 500 * time.Millisecond

// readinessChecks are /readyz's dependency checks (internal/health): the database at most
// once a second, each keyring's current KEK at most once per 5 s (API.md, Operations),
// every run under its own deadline.
func readinessChecks(st *store.Store, creds, secrets *vault.Keyring) *health.Checker {
	return health.New(
		health.Check{Name: "database", Probe: st.Ping, Every: time.Second, Timeout: 2 * time.Second},
		health.Check{Name: "kms", Probe: creds.Ping, Every: 5 * time.Second, Timeout: 4 * time.Second},
		health.Check{Name: "kms", Probe: secrets.Ping, Every: 5 * time.Second, Timeout: 4 * time.Second})
}

func (s *Server) handleHealthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

func (s *Server) handleReadyz(c *gin.Context) {
	checks := gin.H{"startup": "ok", "database": "ok", "kms": "ok", "audit": "ok"}
	ok := true
	if !s.ready.Load() {
		checks["startup"], ok = "pending", false
	}
	for name, err := range s.health.Status(readyzWait) {
		if err != nil {
			checks[name], ok = "unavailable", false
		}
	}
	if !s.audit.Healthy() {
		checks["audit"], ok = "unavailable", false
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	// Informational, never a reason to be unready: how the connection cache hears of other
	// replicas' writes (listen, ttl behind a pooler without AUTHPIPE_DATABASE_LISTEN_URL,
	// process on SQLite, none while the cache is off).
	c.JSON(status, gin.H{"ready": ok, "checks": checks, "cache_invalidation": s.store.Invalidation().String()})
}

package proxy

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

func (s *Server) handleHealthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

func (s *Server) handleReadyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	checks := gin.H{"startup": "ok", "database": "ok", "kms": "ok", "audit": "ok"}
	ok := true
	if !s.ready.Load() {
		checks["startup"], ok = "pending", false
	}
	if err := s.store.Ping(ctx); err != nil {
		checks["database"], ok = "unavailable", false
	}
	if err := errors.Join(s.creds.Ping(ctx), s.secret.Ping(ctx)); err != nil {
		checks["kms"], ok = "unavailable", false
	}
	if !s.audit.Healthy() {
		checks["audit"], ok = "unavailable", false
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, gin.H{"ready": ok, "checks": checks})
}

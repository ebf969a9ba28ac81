package proxy

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// MaxBodyBytes is the largest request body the API reads (API.md: 1 MiB).
const MaxBodyBytes = 1 << 20

const (
	ctxRequestID = "authpipe.request_id"
	ctxPrincipal = "authpipe.principal"
	ctxBody      = "authpipe.body"
)

// securityHeaders sets the headers every response carries. Cache-Control: no-store is
// on everything: almost every response can carry a credential or a one-time URL.
// The keys are already canonical and the values share one backing array (one allocation
// per request instead of six, no canonicalisation); each value slice has capacity 1, so a
// later Add or Set never writes into another header's value.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	v := make([]string, 6)
	v[0], v[1], v[2] = "max-age=63072000; includeSubDomains", "nosniff", "DENY"
	v[3], v[4], v[5] = "no-referrer", "no-store", "default-src 'none'; frame-ancestors 'none'"
	h["Strict-Transport-Security"] = v[0:1:1]
	h["X-Content-Type-Options"] = v[1:2:2]
	h["X-Frame-Options"] = v[2:3:3]
	h["Referrer-Policy"] = v[3:4:4]
	h["Cache-Control"] = v[4:5:5]
	h["Content-Security-Policy"] = v[5:6:6]
	c.Next()
}

// requestID assigns every request an id (a caller-supplied one is kept only if it is a
// short token of safe characters, so it cannot inject into logs).
func requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if !safeToken(id, 64) {
		id = ids.Random(12)
	}
	c.Set(ctxRequestID, id)
	c.Writer.Header()["X-Request-Id"] = []string{id} // canonical key: no CanonicalMIMEHeaderKey
	c.Next()
}

func safeToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			return false
		}
	}
	return true
}

// isTooLarge reports whether a body read failed on the size limit.
func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// accessLog writes one line per request: the route template (never the raw URL, whose
// query could carry a token), status, latency, request id, workspace and key id.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		if !log.Enabled(c.Request.Context(), slog.LevelInfo) {
			return // below the configured level: build nothing (the hot path's allocations)
		}
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		attrs := []slog.Attr{
			slog.String("method", c.Request.Method),
			slog.String("route", route),
			slog.Int("status", c.Writer.Status()),
			slog.Duration("latency", time.Since(start)),
			slog.String("request_id", c.GetString(ctxRequestID)),
		}
		if p, ok := principalOf(c); ok {
			attrs = append(attrs, slog.String("workspace", p.WorkspaceID), slog.String("key_id", p.KeyID))
		}
		log.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", attrs...)
	}
}

// recovery turns a panic into a 500 without echoing the panic value to the client or the
// log (a panic value can hold anything the handler held).
func recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if err, ok := r.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(r)
				}
				log.Error("handler panicked", "request_id", c.GetString(ctxRequestID), "route", c.FullPath())
				if !c.Writer.Written() {
					writeProblem(c, problem.ErrInternal)
				}
				c.Abort()
			}
		}()
		c.Next()
	}
}

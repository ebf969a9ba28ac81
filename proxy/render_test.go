package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	must "github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Every lower layer's sentinel reaches the client as its own problem through the one
// mapping, however deeply it is wrapped; nothing unknown is rendered.
func TestLowerLayersErrorsMapToTheirProblems(t *testing.T) {
	gin.SetMode(gin.TestMode)
	wrap := func(err error) error { return fmt.Errorf("handler: %w", fmt.Errorf("service: %w", err)) }
	for name, tc := range map[string]struct {
		err        error
		status     int
		code       string
		retryAfter string
	}{
		"store not found":       {store.ErrNotFound, 404, "not_found", ""},
		"vault not found":       {vault.ErrNotFound, 404, "not_found", ""},
		"store conflict":        {store.ErrConflict, 409, "conflict", ""},
		"database unavailable":  {store.ErrUnavailable, 503, "database_unavailable", ""},
		"kms unavailable":       {kms.ErrUnavailable, 503, "kms_unavailable", ""},
		"vault kms unavailable": {vault.ErrKMSUnavailable, 503, "kms_unavailable", ""},
		"audit unavailable":     {audit.ErrUnavailable, 503, "audit_unavailable", ""},
		"needs reauth":          {refresher.ErrNeedsReauth, 409, "needs_reauth", ""},
		"disconnected":          {refresher.ErrDisconnected, 410, "disconnected", ""},
		"refresh unavailable":   {refresher.ErrUnavailable, 503, "refresh_unavailable", "5"},
		"unsafe url at use":     {outbound.ErrUnsafeURL, 502, "unsafe_url", ""},
		"unsafe address dialed": {&outbound.UnsafeAddressError{Host: "10.0.0.1", Reason: "private"}, 502, "unsafe_url", ""},
		"unknown":               {errors.New("pq: secret-looking text"), 500, "internal", ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := gin.New()
			r.Use(errorMiddleware(slog.New(slog.DiscardHandler)))
			r.GET("/", func(c *gin.Context) { fail(c, wrap(tc.err)) })
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			must.Equal(t, tc.status, w.Code)
			must.Contains(t, w.Body.String(), `"code":"`+tc.code+`"`)
			must.NotContains(t, w.Body.String(), "secret-looking")
			must.Equal(t, tc.retryAfter, w.Header().Get("Retry-After"))
		})
	}
}

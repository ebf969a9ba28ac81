package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/metrics"
)

// benchEngine is the token route with a trivial handler, with or without the metrics
// middleware, so the difference is the middleware's own cost.
func benchEngine(withMetrics bool) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	s := &Server{metrics: metrics.New(metrics.BuildInfo{})}
	r := gin.New()
	if withMetrics {
		r.Use(s.observeRequest)
	}
	r.Use(stampRequest) // as routes() does: the request state the token handler marks
	r.GET(tokenRoute, func(c *gin.Context) {
		markCredentialType(c, "api_key")
		c.Status(http.StatusOK)
	})
	return r
}

func benchTokenRoute(b *testing.B, withMetrics bool) {
	r := benchEngine(withMetrics)
	req := httptest.NewRequest(http.MethodGet, "/v1/connections/conn_abc/token", nil)
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req) // warm the series
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.ServeHTTP(w, req)
	}
}

// BenchmarkTokenRouteMetrics: compare allocs/op with BenchmarkTokenRouteBare.
func BenchmarkTokenRouteMetrics(b *testing.B) { benchTokenRoute(b, true) }
func BenchmarkTokenRouteBare(b *testing.B)    { benchTokenRoute(b, false) }

// TestMetricsMiddlewareAddsNoAllocations pins what the benchmarks show.
func TestMetricsMiddlewareAddsNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are pinned without -race (scripts/test.sh runs this in its no-race pass)")
	}
	allocs := func(withMetrics bool) float64 {
		r := benchEngine(withMetrics)
		req := httptest.NewRequest(http.MethodGet, "/v1/connections/conn_abc/token", nil)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return testing.AllocsPerRun(200, func() { r.ServeHTTP(w, req) })
	}
	bare, with := allocs(false), allocs(true)
	if with > bare {
		t.Fatalf("the metrics middleware adds %.1f allocs/op (bare %.1f, with %.1f)", with-bare, bare, with)
	}
}

package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	must "github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/admin"
)

// accessEngine is the token route behind stampRequest and the access log of mode (none:
// no access-log middleware at all), with a handler that answers like a served read of an
// authenticated key, or 404 for the id "missing".
func accessEngine(log *slog.Logger, mode string) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(stampRequest)
	if mode != "none" {
		r.Use(accessLog(log, mode))
	}
	r.GET(tokenRoute, func(c *gin.Context) {
		rq := requestOf(c)
		rq.principal, rq.authed = admin.Principal{WorkspaceID: "ws_default", KeyID: "apk_bench"}, true
		if c.Param("id") == "missing" {
			c.Status(http.StatusNotFound)
			return
		}
		c.Status(http.StatusOK)
	})
	return r
}

// BenchmarkAccessLog measures the access log on the token route at the info level with
// the JSON handler (to io.Discard: the formatting, not the disk, is measured):
//
//	go test -run '^$' -bench BenchmarkAccessLog -benchmem ./proxy
func BenchmarkAccessLog(b *testing.B) {
	for _, mode := range []string{"none", AccessLogOff, AccessLogSummary, AccessLogAll} {
		b.Run(mode, func(b *testing.B) {
			r := accessEngine(slog.New(slog.NewJSONHandler(io.Discard, nil)), mode)
			req := httptest.NewRequest(http.MethodGet, "/v1/connections/conn_abc/token", nil)
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := httptest.NewRecorder()
				for pb.Next() {
					r.ServeHTTP(w, req)
				}
			})
		})
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// In summary mode a 2xx answer is counted, not written; a non-2xx answer is one line as
// before; the summary line counts the 2xx answers per method, route and status.
func TestAccessLogSummary(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	sum := &accessSummary{log: log, interval: time.Hour, groups: map[accessKey]*accessStat{}}
	r := gin.New()
	r.Use(stampRequest, accessLogWith(log, sum))
	r.GET(tokenRoute, func(c *gin.Context) {
		if c.Param("id") == "missing" {
			c.Status(http.StatusNotFound)
			return
		}
		c.Status(http.StatusOK)
	})
	for range 25 {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/connections/conn_abc/token", nil))
	}
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/connections/missing/token", nil))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	must.Len(t, lines, 1, "only the 404 is written per request: %s", buf.String())
	must.Contains(t, lines[0], `"msg":"request"`)
	must.Contains(t, lines[0], `"status":404`)
	must.Contains(t, lines[0], `"request_id"`)

	sum.flush()
	lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
	must.Len(t, lines, 2)
	must.Contains(t, lines[1], `"msg":"requests"`)
	must.Contains(t, lines[1], `"route":"/v1/connections/:id/token"`)
	must.Contains(t, lines[1], `"status":200`)
	must.Contains(t, lines[1], `"count":25`)
	must.Contains(t, lines[1], `"max_latency_ms"`)
	sum.flush()
	must.Len(t, strings.Split(strings.TrimSpace(buf.String()), "\n"), 2, "an interval without requests writes nothing")
}

// In all mode every request is a line; off writes none.
func TestAccessLogModes(t *testing.T) {
	for mode, want := range map[string]int{AccessLogAll: 3, AccessLogOff: 0} {
		var buf lockedBuffer
		r := accessEngine(slog.New(slog.NewJSONHandler(&buf, nil)), mode)
		for _, id := range []string{"a", "b", "missing"} {
			r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/connections/"+id+"/token", nil))
		}
		must.Equal(t, want, strings.Count(buf.String(), `"msg":"request"`), mode)
	}
}

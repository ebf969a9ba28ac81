package metrics_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/metrics"
)

// A server gets its own registry; the HTTP layer observes each request by route
// template, and /metrics serves the text format.
func Example() {
	m := metrics.New(metrics.BuildInfo{Version: "v1.0.0"})
	m.SetCatalog([]string{"github", "stripe"})
	m.ObserveHTTP("/v1/connections/:id/token", "GET", 200, 3*time.Millisecond)
	m.TokenRead("api_key", "success")
	m.Refresh("my-internal-idp", metrics.OutcomeSuccess) // not a catalog name: "custom"

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "authpipe_token_re") && !strings.HasSuffix(line, " 0") {
			fmt.Println(line)
		}
	}
	// Output:
	// authpipe_token_reads_total{credential_type="api_key",outcome="success"} 1
	// authpipe_token_refreshes_total{outcome="success",provider="custom"} 1
}

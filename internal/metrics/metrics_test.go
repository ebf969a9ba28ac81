package metrics_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/metrics"
)

// KEKObserver counts what kms.Observe reports: latency by backend and operation,
// failures by backend, operation and kind; the KEK id is never a label value.
func TestKEKObserverByBackendAndKind(t *testing.T) {
	for _, tc := range []struct {
		id, backend string
		kind        string
	}{
		{"awskms:arn:aws:kms:eu-west-1:1:key/abc", "awskms", "unavailable"},
		{"vault-transit:127.0.0.1:8200/transit/k", "vault-transit", "decrypt"},
		{"pkcs11:token=t;object=o", "pkcs11", "unknown_key"},
		{"local:0011", "local", "canceled"},
		{"gcpkms:projects/p/locations/l/keyRings/r/cryptoKeys/k", "gcpkms", "unavailable"},
		{"azurekv:v.vault.azure.net/keys/k", "azurekv", "decrypt"},
		{"weird:thing", "other", "other"},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			m := metrics.New(metrics.BuildInfo{})
			observe := m.KEKObserver(tc.id)
			for _, op := range []string{"wrap", "unwrap", "ping"} {
				observe(op, time.Millisecond, tc.kind)
				observe(op, time.Millisecond, "")
			}
			for _, op := range []string{"wrap", "unwrap", "ping"} {
				sel := fmt.Sprintf(`backend=%q,error=%q,operation=%q`, tc.backend, tc.kind, op)
				require.Equal(t, 1.0, counterValue(t, m, "authpipe_kms_errors_total", sel), sel)
				require.Equal(t, 2, sampleCount(t, m, "authpipe_kms_request_duration_seconds",
					fmt.Sprintf(`backend=%q,operation=%q`, tc.backend, op)))
			}
			// The KEK id (which names a key ARN or an HSM token) is not a label value.
			require.NotContains(t, scrape(t, m), tc.id)
		})
	}
}

func TestKEKObserverOfNilMetricsIsNil(t *testing.T) {
	var m *metrics.Metrics
	require.Nil(t, m.KEKObserver("local:1"))
}

func TestHTTPTokensRefreshesAuditLabelsAreBounded(t *testing.T) {
	m := metrics.New(metrics.BuildInfo{Version: "v1.2.3", Revision: "abc123"})
	m.SetCatalog([]string{"github", "stripe"})
	m.ObserveHTTP("/v1/connections/:id/token", "GET", 200, time.Millisecond)
	m.ObserveHTTP(metrics.Unmatched, "BREW", 404, time.Millisecond)
	m.ObserveHTTP(metrics.Unmatched, "GET", 1000, time.Millisecond)
	m.TokenRead("api_key", "success")
	m.TokenRead("sk_live_secret", "conn_123") // folded, never a label
	m.Refresh("github", metrics.OutcomeSuccess)
	m.Refresh("acme-internal-ws_9", "ap_secret")
	m.AuditWrite(7, nil)
	m.AuditWrite(7, errors.New("db down"))
	m.AuditChainBroken()
	m.SecurityAnomaly("key_connections_burst")
	m.SecurityAnomaly("ap_secret") // unbounded input is "other"
	require.NoError(t, m.ObserveAuditQueue(func() int { return 3 }))
	require.NoError(t, m.ObserveDEKCache("credentials", func() int { return 2 }))
	require.Error(t, m.ObserveDEKCache("credentials", func() int { return 2 }), "registering twice is refused")

	for _, tc := range []struct {
		family, sel string
		want        float64
	}{
		{"authpipe_token_reads_total", `credential_type="api_key",outcome="success"`, 1},
		{"authpipe_security_anomalies_total", `kind="key_connections_burst"`, 1},
		{"authpipe_security_anomalies_total", `kind="other"`, 1},
		{"authpipe_token_reads_total", `credential_type="unknown",outcome="other"`, 1},
		{"authpipe_token_refreshes_total", `outcome="success",provider="github"`, 1},
		{"authpipe_token_refreshes_total", `outcome="error",provider="custom"`, 1},
		{"authpipe_audit_batch_writes_total", `outcome="success"`, 1},
		{"authpipe_audit_batch_writes_total", `outcome="failure"`, 1},
		{"authpipe_audit_events_appended_total", ``, 7},
		{"authpipe_audit_queue_depth", ``, 3},
		{"authpipe_audit_chain_breaks_total", ``, 1},
		{"authpipe_dek_cache_entries", `purpose="credentials"`, 2},
		{"authpipe_provider_catalog_size", ``, 2},
		{"authpipe_build_info", `go_version=`, 1},
	} {
		t.Run(tc.family+"{"+tc.sel+"}", func(t *testing.T) {
			require.Equal(t, tc.want, counterValue(t, m, tc.family, tc.sel))
		})
	}
	require.Equal(t, 1, sampleCount(t, m, "authpipe_http_request_duration_seconds", `code="404",method="other",route="unmatched"`))
	require.Equal(t, 1, sampleCount(t, m, "authpipe_http_request_duration_seconds", `code="other",method="GET",route="unmatched"`))
	out := scrape(t, m)
	for _, bad := range []string{"BREW", "sk_live", "conn_", "ws_9", "ap_secret", "acme"} {
		require.NotContains(t, out, bad)
	}
}

// The hot path's observation allocates nothing once its series exists.
func TestObserveHTTPDoesNotAllocate(t *testing.T) {
	m := metrics.New(metrics.BuildInfo{})
	m.ObserveHTTP("/v1/connections/:id/token", "GET", 200, time.Millisecond)
	allocs := testing.AllocsPerRun(1000, func() {
		m.ObserveHTTP("/v1/connections/:id/token", "GET", 200, time.Millisecond)
		m.TokenRead("api_key", "success")
	})
	require.Zero(t, allocs)
}

// ---- helpers ----

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	var b strings.Builder
	mfs, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		b.WriteString(mf.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// lines returns the text-format sample lines of a family whose labels contain sel.
func lines(t *testing.T, m *metrics.Metrics, name, sel string) []string {
	t.Helper()
	var buf strings.Builder
	require.NoError(t, writeText(&buf, m))
	var out []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.HasPrefix(l, name) && (sel == "" || strings.Contains(l, sel)) {
			out = append(out, l)
		}
	}
	return out
}

func counterValue(t *testing.T, m *metrics.Metrics, name, sel string) float64 {
	t.Helper()
	ls := lines(t, m, name+"{", sel)
	if sel == "" {
		ls = append(ls, lines(t, m, name+" ", "")...)
	}
	require.Len(t, ls, 1, "%s{%s}", name, sel)
	var v float64
	_, err := fmt.Sscan(ls[0][strings.LastIndexByte(ls[0], ' ')+1:], &v)
	require.NoError(t, err)
	return v
}

func sampleCount(t *testing.T, m *metrics.Metrics, name, sel string) int {
	t.Helper()
	return int(counterValue(t, m, name+"_count", sel))
}

// writeText renders the registry in the text exposition format.
func writeText(w io.Writer, m *metrics.Metrics) error {
	mfs, err := m.Registry().Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}

func TestOperationalFamilies(t *testing.T) {
	m := metrics.New(metrics.BuildInfo{})
	m.SetCatalog([]string{"github"})
	m.RefreshDuration("github", 120*time.Millisecond)
	m.RefreshDuration("my-own", time.Second)
	m.SetConnections(map[string]int64{"active": 3, "needs_reauth": 1, "bogus": 9})
	m.WebhookDelivery(metrics.DeliveryDelivered)
	m.WebhookDelivery(metrics.DeliveryRetry)
	m.WebhookDelivery("nonsense")
	m.RateLimited(metrics.LimitPerKey)
	m.RateLimited(metrics.LimitPerIP)
	m.RateLimited(metrics.LimitPerIP)
	db := sql.OpenDB(nopConnector{}) // never connects: the pool's statistics are all zero
	defer db.Close()
	require.NoError(t, m.ObserveDB(db))

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`authpipe_refresh_duration_seconds_count{provider="github"} 1`,
		`authpipe_refresh_duration_seconds_count{provider="custom"} 1`,
		`authpipe_connections{status="active"} 3`,
		`authpipe_connections{status="needs_reauth"} 1`,
		`authpipe_connections{status="disconnected"} 0`,
		`authpipe_webhook_deliveries_total{outcome="delivered"} 1`,
		`authpipe_webhook_deliveries_total{outcome="retry"} 1`,
		`authpipe_webhook_deliveries_total{outcome="gave_up"} 0`,
		`authpipe_rate_limit_refusals_total{limit="per_key"} 1`,
		`authpipe_rate_limit_refusals_total{limit="per_ip"} 2`,
		`go_sql_open_connections{db_name="authpipe"}`,
		`go_sql_in_use_connections{db_name="authpipe"}`,
		`go_sql_idle_connections{db_name="authpipe"}`,
		`go_sql_wait_count_total{db_name="authpipe"}`,
		`go_sql_wait_duration_seconds_total{db_name="authpipe"}`,
	} {
		require.Contains(t, body, want)
	}
	require.NotContains(t, body, "bogus")
	require.NotContains(t, body, "my-own")
}

type nopConnector struct{}

func (nopConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("no database")
}
func (nopConnector) Driver() driver.Driver { return nil }

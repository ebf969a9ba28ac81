package proxy_test

import (
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/vault/store"
)

// boundedLabel is what every label value may look like: route templates, methods, codes,
// outcomes, backends, bucket bounds, versions. An id (conn_…, ws_…, apk_…), an API key
// (ap_…) or a raw path fails it.
var (
	boundedLabel   = regexp.MustCompile(`^[A-Za-z0-9_.:+\-/()]{0,80}$`)
	forbiddenLabel = regexp.MustCompile(`conn_|ws_|apk_|ap_|evt_|cs_|sk_live|user-42`)
)

// TestMetricsAfterAFlow drives a flow through the real server (create a key, an API-key
// connection, a token read, a 404, a 401, an unmatched path), scrapes /metrics without an
// API key and checks the families and that every label value is bounded.
func TestMetricsAfterAFlow(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	writer := h.createKey("connections:write")
	reader := h.createKey("tokens:read")
	c := h.expect(h.do("POST", "/v1/connections", writer, map[string]any{
		"provider": "stripe", "end_user_id": "user-42", "api_key": "sk_live_abcdefghijklmnopqrstuvwxyz",
	}), 201, "")
	id := c.Body["id"].(string)
	h.expect(h.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")
	h.expect(h.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")
	h.expect(h.do("GET", "/v1/connections/conn_doesnotexist/token", reader, nil), 404, "not_found")
	h.expect(h.do("GET", "/v1/connections/"+id+"/token", "ap_wrongwrongwrongwrongwrongwrongwrong", nil), 401, "unauthorized")
	h.expect(h.do("GET", "/v1/nothing/here/"+id, reader, nil), 404, "not_found")

	r := h.do("GET", "/metrics", "", nil)
	require.Equal(t, 200, r.Status, r.Raw)
	require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain"), r.Header.Get("Content-Type"))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(r.Raw))
	require.NoError(t, err)

	for _, name := range []string{
		"authpipe_http_request_duration_seconds", "authpipe_token_reads_total", // token_refreshes_total appears with the first refresh
		"authpipe_kms_request_duration_seconds", "authpipe_kms_errors_total", "authpipe_dek_cache_entries",
		"authpipe_audit_batch_writes_total", "authpipe_audit_queue_depth", "authpipe_provider_catalog_size",
		"authpipe_build_info", "go_goroutines", "process_cpu_seconds_total",
	} {
		t.Run("family "+name, func(t *testing.T) {
			_, ok := families[name]
			require.True(t, ok, "family %s missing from /metrics", name)
		})
	}

	t.Run("every label value is bounded", func(t *testing.T) {
		n := 0
		for name, mf := range families {
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					n++
					require.Regexp(t, boundedLabel, lp.GetValue(), "%s{%s=%q}", name, lp.GetName(), lp.GetValue())
					require.NotRegexp(t, forbiddenLabel, lp.GetValue(), "%s{%s=%q}", name, lp.GetName(), lp.GetValue())
				}
			}
		}
		require.Positive(t, n)
		require.NotContains(t, r.Raw, id)
		require.NotContains(t, r.Raw, "sk_live_")
	})

	count := func(name string, labels map[string]string) float64 {
		t.Helper()
		mf, ok := families[name]
		require.True(t, ok, name)
		sum := 0.0 // over every series that has these labels
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
		return sum
	}
	tokenRoute := "/v1/connections/:id/token"
	for _, tc := range []struct {
		name   string
		family string
		labels map[string]string
		want   float64
	}{
		{"token 200s by route template", "authpipe_http_request_duration_seconds", map[string]string{"route": tokenRoute, "method": "GET", "code": "200"}, 2},
		{"token 404 by route template", "authpipe_http_request_duration_seconds", map[string]string{"route": tokenRoute, "code": "404"}, 1},
		{"token 401 by route template", "authpipe_http_request_duration_seconds", map[string]string{"route": tokenRoute, "code": "401"}, 1},
		{"unmatched path", "authpipe_http_request_duration_seconds", map[string]string{"route": "unmatched", "code": "404"}, 1},
		{"connection created", "authpipe_http_request_duration_seconds", map[string]string{"route": "/v1/connections", "method": "POST", "code": "201"}, 1},
		{"token reads served", "authpipe_token_reads_total", map[string]string{"outcome": "success"}, 2},
		{"token read not found", "authpipe_token_reads_total", map[string]string{"outcome": "not_found"}, 1},
		{"token read unauthorized", "authpipe_token_reads_total", map[string]string{"outcome": "unauthorized"}, 1},
		{"a DEK was wrapped by the local KEK", "authpipe_kms_request_duration_seconds", map[string]string{"backend": "local", "operation": "wrap"}, -1},
		{"the catalog size", "authpipe_provider_catalog_size", nil, -1},
		{"the credentials DEK is cached", "authpipe_dek_cache_entries", map[string]string{"purpose": "credentials"}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := count(tc.family, tc.labels)
			if tc.want < 0 {
				require.Positive(t, got)
				return
			}
			require.Equal(t, tc.want, got)
		})
	}

	// The token reads' audit events reach the batch writer's metrics once it flushes.
	require.Eventually(t, func() bool {
		r := h.do("GET", "/metrics", "", nil)
		return strings.Contains(r.Raw, `authpipe_audit_batch_writes_total{outcome="success"} `) &&
			!strings.Contains(r.Raw, `authpipe_audit_batch_writes_total{outcome="success"} 0`)
	}, 5e9, 2e7)
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(want)
}

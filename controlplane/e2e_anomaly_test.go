package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/controlplane/cptest"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// A synthetic burst from one key fires exactly one security.anomaly, and it is everywhere
// it must be: the audit chain, the workspace's webhook, the control plane (metadata only)
// and the metric. A read from an address the key never used, after its warm-up, fires
// once; the same address again does not. Nothing carries a credential or the address.
func TestAnomalyReachesAuditWebhookControlPlaneAndMetric(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) { anomalyEndToEnd(t, dialect) })
	}
}

func anomalyEndToEnd(t *testing.T, dialect string) {
	cp, err := cptest.NewServer(cpToken)
	require.NoError(t, err)
	defer cp.Close()
	var mu sync.Mutex
	var hooks []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hooks = append(hooks, string(b))
		mu.Unlock()
	}))
	defer receiver.Close()

	env := linkedEnv(t, cp, dialect)
	env["AUTHPIPE_ANOMALY_WINDOW"] = "3s"
	env["AUTHPIPE_ANOMALY_KEY_CONNECTIONS"] = "5"
	env["AUTHPIPE_ANOMALY_CLIENT_WARMUP"] = "2s"
	env["AUTHPIPE_TRUSTED_PROXIES"] = "127.0.0.1/32"
	p := startProxy(t, env)
	st, _ := p.do(t, "PUT", "/v1/webhooks", e2eBootstrapKey, map[string]any{"url": receiver.URL + "/hook"})
	require.Equal(t, 200, st)
	st, body := p.do(t, "POST", "/v1/api-keys", e2eBootstrapKey, map[string]any{"name": "burst",
		"scopes": []string{"connections:write", "tokens:read"}})
	require.Equal(t, 201, st, "%v", body)
	key, keyID := body["key"].(string), body["id"].(string)

	var conns []string
	for i := range 10 {
		st, body := p.do(t, "POST", "/v1/connections", key, map[string]any{"provider": "stripe",
			"end_user_id": fmt.Sprintf("u%d", i), "api_key": fmt.Sprintf("sk_test_%s%02dxxxxxxxxxxxxxxxx", sentinelPrefix, i)})
		require.Equal(t, 201, st, "%v", body)
		conns = append(conns, body["id"].(string))
	}
	// The burst: 10 distinct connections at once (at least 5 fall in one window).
	for _, c := range conns {
		st, _ := p.do(t, "GET", "/v1/connections/"+c+"/token", key, nil)
		require.Equal(t, 200, st)
	}
	anomalies := func(kind string) []audit.Event {
		evs, err := p.app.Store.ListAudit(context.Background(), store.DefaultWorkspaceID, "", 10000)
		require.NoError(t, err)
		var out []audit.Event
		for _, e := range evs {
			if e.Type == audit.SecurityAnomaly && e.ErrorCode == kind {
				out = append(out, e)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(anomalies(audit.AnomalyKeyConnections)) == 1 }, 20*time.Second, 100*time.Millisecond)

	// The warm-up is over: a read through a proxy from another address fires once.
	time.Sleep(3 * time.Second)
	readFrom := func(addr string) {
		req, err := http.NewRequest("GET", p.base+"/v1/connections/"+conns[0]+"/token", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("X-Forwarded-For", addr)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = res.Body.Close()
		require.Equal(t, 200, res.StatusCode)
	}
	readFrom("203.0.113.77")
	require.Eventually(t, func() bool { return len(anomalies(audit.AnomalyNewClientAddress)) == 1 }, 20*time.Second, 100*time.Millisecond)
	readFrom("203.0.113.77")
	readFrom("203.0.113.77")
	time.Sleep(2500 * time.Millisecond) // a sealer window and a learner pass
	require.Len(t, anomalies(audit.AnomalyNewClientAddress), 1, "the same address again is known")
	require.Len(t, anomalies(audit.AnomalyKeyConnections), 1, "one burst, one finding")

	// The control plane has each finding once, as metadata.
	evs := waitN(t, cp, controlplane.EventSecurityAnomaly, 2)
	byKind := map[controlplane.AnomalyKind]int{}
	for _, e := range evs {
		if e.Type != controlplane.EventSecurityAnomaly {
			continue
		}
		require.NotNil(t, e.Anomaly)
		require.Equal(t, keyID, e.Anomaly.APIKeyID)
		require.Equal(t, store.DefaultWorkspaceID, e.WorkspaceID)
		byKind[e.Anomaly.Kind]++
	}
	require.Equal(t, map[controlplane.AnomalyKind]int{controlplane.AnomalyKeyConnections: 1, controlplane.AnomalyNewClientAddress: 1}, byKind)

	// The workspace's webhook: one delivery per finding.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, h := range hooks {
			if strings.Contains(h, `"type":"security.anomaly"`) {
				n++
			}
		}
		return n == 2
	}, 30*time.Second, 100*time.Millisecond)
	mu.Lock()
	var kinds []string
	for _, h := range hooks {
		var w struct {
			Type string `json:"type"`
			Data struct {
				Anomaly struct {
					Kind     string `json:"kind"`
					APIKeyID string `json:"api_key_id"`
					Count    int64  `json:"count"`
				} `json:"anomaly"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(h), &w))
		if w.Type == "security.anomaly" {
			kinds = append(kinds, w.Data.Anomaly.Kind)
			require.Equal(t, keyID, w.Data.Anomaly.APIKeyID)
			require.Positive(t, w.Data.Anomaly.Count)
		}
		require.NotContains(t, h, sentinelPrefix)
		require.NotContains(t, h, "203.0.113")
	}
	mu.Unlock()
	require.ElementsMatch(t, []string{audit.AnomalyKeyConnections, audit.AnomalyNewClientAddress}, kinds)

	// The metric, by bounded kind.
	require.Equal(t, 1.0, anomalyMetric(t, p, audit.AnomalyKeyConnections))
	require.Equal(t, 1.0, anomalyMetric(t, p, audit.AnomalyNewClientAddress))

	// Nothing of it carries a credential or the client's address.
	for _, e := range append(anomalies(audit.AnomalyKeyConnections), anomalies(audit.AnomalyNewClientAddress)...) {
		require.NotContains(t, e.Data, "203.0.113")
		require.NotContains(t, e.Data, key)
	}
	for _, r := range cp.Requests() {
		require.NotContains(t, string(r.Body), sentinelPrefix)
		require.NotContains(t, string(r.Body), "203.0.113")
		require.NotContains(t, string(r.Body), key)
	}
}

// anomalyMetric reads authpipe_security_anomalies_total{kind}.
func anomalyMetric(t *testing.T, p *running, kind string) float64 {
	t.Helper()
	mfs, err := p.app.Metrics.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "authpipe_security_anomalies_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

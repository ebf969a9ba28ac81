package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// securityAnomalies are the security.anomaly events of the default workspace.
func securityAnomalies(t *testing.T, h *harness) []audit.Event {
	t.Helper()
	evs, err := h.app.Store.ListAudit(context.Background(), store.DefaultWorkspaceID, "", 100000)
	require.NoError(t, err)
	var out []audit.Event
	for _, e := range evs {
		if e.Type == audit.SecurityAnomaly {
			out = append(out, e)
		}
	}
	return out
}

// The normal suite fires none: a representative workload — a few keys reading a few
// connections many times from one address, past the keys' warm-up, a refused read now and
// then, an OAuth connection refreshed on its schedule — under the default thresholds (the
// window and the warm-up shortened so that they pass during the test) is no finding.
func TestNormalWorkloadFiresNoAnomaly(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFlowEnv(t, dialect, oauthtest.Options{AutoLogin: true},
				map[string]string{"AUTHPIPE_ANOMALY_WINDOW": "1s", "AUTHPIPE_ANOMALY_CLIENT_WARMUP": "1s"})
			b := f.browser()
			_, connectURL := f.session(nil)
			oauthID := f.connected(b, f.toCallback(b, connectURL))
			calls := f.as.TokenCalls()

			writer := f.h.createKey("connections:write")
			var conns []string
			for i := range 4 {
				r := f.h.expect(f.h.do("POST", "/v1/connections", writer, map[string]any{"provider": "stripe",
					"end_user_id": fmt.Sprintf("u%d", i), "api_key": fmt.Sprintf("sk_test_normal%02d000000000000", i)}), 201, "")
				conns = append(conns, r.Body["id"].(string))
			}
			var readers, readerIDs []string
			for i := range 3 {
				r := f.h.expect(f.h.do("POST", "/v1/api-keys", bootstrapKey, map[string]any{"name": fmt.Sprintf("app-%d", i),
					"scopes": []string{"tokens:read"}}), 201, "")
				readers, readerIDs = append(readers, r.Body["key"].(string)), append(readerIDs, r.Body["id"].(string))
			}
			deadline := time.Now().Add(3 * time.Second) // past the warm-up, over several windows
			for round := 0; round < 6 || time.Now().Before(deadline); round++ {
				for _, k := range readers {
					for _, c := range conns {
						for range 5 {
							f.h.expect(f.h.do("GET", "/v1/connections/"+c+"/token", k, nil), 200, "")
						}
					}
				}
				f.h.expect(f.h.do("GET", "/v1/connections/conn_unknown/token", readers[0], nil), 404, "not_found")
				f.token(oauthID)
				if round%2 == 1 {
					f.clock.advance(51 * time.Minute) // the one-hour token enters its lead window: one refresh
				}
				time.Sleep(150 * time.Millisecond)
			}
			require.Greater(t, f.as.TokenCalls(), calls+1, "the OAuth connection was refreshed on its schedule")
			time.Sleep(2500 * time.Millisecond) // the last windows close, the learner runs
			require.Empty(t, securityAnomalies(t, f.h))
			for _, id := range readerIDs {
				n, err := f.h.app.Store.APIKeyClientCount(context.Background(), store.DefaultWorkspaceID, id, audit.ClientAddress)
				require.NoError(t, err)
				require.Equal(t, int64(1), n, "the detection learnt the key's one address")
			}
			// (the harness fails the test on any "security anomaly" log line, too)
		})
	}
}

// A refresh storm — one connection refreshed far more often than its schedule would — is
// one security.anomaly refresh_storm, once per cooldown, from the refresher's outcomes.
func TestRefreshStormFiresOnce(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFlowEnv(t, dialect, oauthtest.Options{AutoLogin: true}, map[string]string{
				"AUTHPIPE_ANOMALY_WINDOW": "10m", "AUTHPIPE_ANOMALY_REFRESH_STORM": "5", "AUTHPIPE_FORCED_REFRESH_INTERVAL": "1s"})
			f.h.anomaliesExpected = true
			b := f.browser()
			_, connectURL := f.session(nil)
			id := f.connected(b, f.toCallback(b, connectURL))
			storm := func() {
				for range 6 {
					f.clock.advance(2 * time.Second)
					f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/refresh", f.key, nil), 200, "")
				}
				f.clock.advance(11 * time.Minute) // the window ends
			}
			calls := f.as.TokenCalls()
			storm()
			require.Equal(t, calls+6, f.as.TokenCalls(), "six refreshes at the provider")
			require.Eventually(t, func() bool { return len(securityAnomalies(t, f.h)) == 1 }, 10*time.Second, 50*time.Millisecond)
			storm() // the cooldown holds
			time.Sleep(2500 * time.Millisecond)
			evs := securityAnomalies(t, f.h)
			require.Len(t, evs, 1)
			require.Equal(t, audit.AnomalyRefreshStorm, evs[0].ErrorCode)
			require.Equal(t, id, evs[0].ConnectionID)
			require.JSONEq(t, `{"kind":"refresh_storm","provider":"fosite","count":"6","baseline":"0","window":"10m0s"}`, evs[0].Data)
		})
	}
}

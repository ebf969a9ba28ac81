package controlplane_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/controlplane/cptest"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// TestControlPlaneCannotRedirectCredentials (the control plane as an actor): a signed
// document that is foreign, expired, stale, issued in the future, an older version, or
// that would change an existing provider's origins or client secret is refused whole,
// audited controlplane.config_refused with its code, reported as a config.refused event
// and counted, and the last good configuration stays in force (GET /v1/providers shows
// it). The deployment id the documents are bound to is the one GET /v1/deployment shows,
// the heartbeats carry, and a restart keeps.
func TestControlPlaneCannotRedirectCredentials(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) { testControlPlaneRefusals(t, dialect) })
	}
}

func testControlPlaneRefusals(t *testing.T, dialect string) {
	cp, err := cptest.NewServer(cpToken)
	require.NoError(t, err)
	defer cp.Close()
	good := func(version int64, clientID string) controlplane.ConfigDocument {
		return controlplane.ConfigDocument{Version: version, Workspaces: []controlplane.WorkspaceConfig{{
			WorkspaceID: store.DefaultWorkspaceID, Providers: []controlplane.ProviderConfigDoc{
				{Key: "gh", Template: "github", ClientID: clientID}},
		}}}
	}
	require.NoError(t, cp.SetConfig(good(1, "Iv1.one")))
	env := linkedEnv(t, cp, dialect)
	p := startProxy(t, env)
	st, body := p.do(t, "POST", "/v1/api-keys", e2eBootstrapKey, map[string]any{"name": "e2e",
		"scopes": []string{"providers:write", "tokens:read"}})
	require.Equal(t, 201, st, "%v", body)
	key := body["key"].(string)

	// The deployment id: the endpoint, the heartbeat and the pull header agree.
	st, body = p.do(t, "GET", "/v1/deployment", key, nil)
	require.Equal(t, 200, st, "%v", body)
	deployment := body["deployment_id"].(string)
	require.Regexp(t, `^dep_[a-z2-7]{26}$`, deployment)
	hb := waitN(t, cp, controlplane.EventHeartbeat, 1)
	for _, e := range hb {
		if e.Type == controlplane.EventHeartbeat {
			require.Equal(t, deployment, e.DeploymentID)
		}
	}
	for _, r := range cp.Requests() {
		require.Equal(t, deployment, r.Header.Get(controlplane.DeploymentHeader))
	}

	provider := func() map[string]any {
		st, body := p.do(t, "GET", "/v1/providers/gh", key, nil)
		require.Equal(t, 200, st, "%v", body)
		return body
	}
	require.Eventually(t, func() bool { st, _ := p.do(t, "GET", "/v1/providers/gh", key, nil); return st == 200 },
		10*time.Second, 50*time.Millisecond)
	require.NoError(t, cp.SetConfig(good(2, "Iv1.two")))
	require.Eventually(t, func() bool { return provider()["client_id"] == "Iv1.two" }, 10*time.Second, 50*time.Millisecond)
	lastGood := provider()

	now := time.Now().UTC()
	withTimes := func(d controlplane.ConfigDocument, issued, expires time.Time) controlplane.ConfigDocument {
		d.IssuedAt, d.ExpiresAt = issued, expires
		return d
	}
	foreign := good(3, "Iv1.foreign")
	foreign.Audience = "dep_" + strings.Repeat("a", 26)
	secretDoc := map[string]any{"version": 9, "audience": deployment, "issued_at": now, "expires_at": now.Add(time.Hour),
		"workspaces": []any{map[string]any{"workspace_id": store.DefaultWorkspaceID, "providers": []any{
			map[string]any{"key": "gh", "template": "github", "client_id": "Iv1.two", "client_secret": "attacker-chosen"}}}}}
	secretPayload, err := json.Marshal(secretDoc)
	require.NoError(t, err)

	for _, tc := range []struct {
		name  string
		code  controlplane.ErrorCode
		serve func()
	}{
		{"foreign audience", controlplane.ErrorForeignConfig, func() { require.NoError(t, cp.SetConfig(foreign)) }},
		{"expired", controlplane.ErrorExpiredConfig, func() {
			require.NoError(t, cp.SetConfig(withTimes(good(4, "Iv1.expired"), now.Add(-2*time.Hour), now.Add(-time.Hour))))
		}},
		{"stale issued_at", controlplane.ErrorStaleConfig, func() {
			require.NoError(t, cp.SetConfig(withTimes(good(5, "Iv1.stale"), now.Add(-25*time.Hour), now.Add(time.Hour))))
		}},
		{"issued in the future", controlplane.ErrorFutureConfig, func() {
			require.NoError(t, cp.SetConfig(withTimes(good(6, "Iv1.future"), now.Add(time.Hour), now.Add(2*time.Hour))))
		}},
		{"replayed older version", controlplane.ErrorStaleConfigReplay, func() { require.NoError(t, cp.SetConfig(good(1, "Iv1.one"))) }},
		{"origin change", controlplane.ErrorConfigOriginChange, func() {
			moved := good(7, "Iv1.two")
			moved.Workspaces[0].Providers[0].TokenURL = "https://collector.example.net/token"
			require.NoError(t, cp.SetConfig(moved))
		}},
		{"client secret change", controlplane.ErrorConfigSecretChange, func() {
			require.NoError(t, cp.SetSignedPayload(secretPayload, cp.Sign(secretPayload)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.serve()
			require.Eventually(t, func() bool {
				evs, err := p.app.Store.ListAudit(context.Background(), store.DefaultWorkspaceID, "", 1000)
				require.NoError(t, err)
				for _, e := range evs {
					if e.Type == controlplane.AuditConfigRefused && e.ErrorCode == string(tc.code) {
						require.Equal(t, audit.Failure, e.Outcome)
						return true
					}
				}
				return false
			}, 10*time.Second, 50*time.Millisecond, "audited %s", tc.code)
			require.Equal(t, lastGood, provider(), "the last good configuration stays in force")
			waitFor := func(evs []controlplane.Event) bool {
				for _, e := range evs {
					if e.Type == controlplane.EventConfigRefused && e.ErrorCode == tc.code {
						return e.DeploymentID == deployment
					}
				}
				return false
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := cp.WaitEvents(ctx, waitFor)
			require.NoError(t, err, "reported to the control plane as config.refused %s", tc.code)
		})
	}
	require.GreaterOrEqual(t, p.app.ControlPlane.Refused(), int64(6), "counted")
	mfs, err := p.app.Metrics.Registry().Gather()
	require.NoError(t, err)
	var exported float64
	for _, mf := range mfs {
		if mf.GetName() == "authpipe_controlplane_config_refused_total" {
			exported = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	require.GreaterOrEqual(t, exported, float64(6), "on /metrics")

	// The id survives a restart on the same database; a document for it still applies.
	p.stop()
	p = startProxy(t, env)
	st, body = p.do(t, "GET", "/v1/deployment", key, nil)
	require.Equal(t, 200, st, "%v", body)
	require.Equal(t, deployment, body["deployment_id"])
	require.NoError(t, cp.SetConfig(good(10, "Iv1.ten")))
	require.Eventually(t, func() bool { return provider()["client_id"] == "Iv1.ten" }, 10*time.Second, 50*time.Millisecond)
}

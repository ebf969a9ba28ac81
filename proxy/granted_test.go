package proxy_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/controlplane/cptest"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// TestCredentialsGoOnlyWhereGranted (issue 16, docs/threat-model.md): for every call that
// carries a credential — forwarding (an access token, an API key), the refresh grant
// (refresh token and client secret), the revocation on disconnect, the health check (an
// API key) and the code exchange (code, verifier, client secret) — a local listener
// stands in for a new origin, and the providers are re-pointed at it through each door
// there is: a providers:write key (403, nothing changed), a signed control-plane document
// (refused whole, the last good configuration in force), and an admin key with the client
// secret (allowed; the connections become needs_reauth). Through every door, the listener
// never receives the access token, the refresh token, the API key or the client secret,
// in any encoding; the refused doors leave every call working at the old origins.
func TestCredentialsGoOnlyWhereGranted(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) { testCredentialsGoOnlyWhereGranted(t, dialect) })
	}
}

func testCredentialsGoOnlyWhereGranted(t *testing.T, dialect string) {
	cp, err := cptest.NewServer("cp-token-granted")
	require.NoError(t, err)
	t.Cleanup(cp.Close)
	f := newFlowEnv(t, dialect, oauthtest.Options{AutoLogin: true}, map[string]string{
		"AUTHPIPE_CONTROL_PLANE_URL": cp.URL, "AUTHPIPE_CONTROL_PLANE_TOKEN": "cp-token-granted",
		"AUTHPIPE_CONTROL_PLANE_PUBLIC_KEY": cp.PublicKeyBase64(),
	})
	h := f.h
	fosite := map[string]any{
		"display_name": "Fosite", "auth_mode": "oauth2", "client_id": f.as.ClientID(),
		"scopes": []string{"read"}, "callback_urls": []string{f.callback}, "return_urls": []string{f.ret},
		"authorization_url": f.as.AuthorizationURL(), "token_url": f.as.TokenURL(), "revocation_url": f.as.RevocationURL(),
		"issuer": f.as.Issuer(), "token_auth_method": "client_secret_basic", "api_base_url": apiOrigin(t, f.as.APIURL()),
	}
	h.expect(h.do("PUT", "/v1/providers/fosite", bootstrapKey, withField(fosite, "client_secret", clientSecret)), 200, "")
	up := newUpstream(t)
	apiKeyConn := echoProvider(t, h, up.URL+"/base")
	echo := map[string]any{"auth_mode": "api_key", "api_base_url": up.URL + "/base", "api_key_auth": "header",
		"api_key_header": "X-Upstream-Key", "api_key_format": "Key {key}", "health_check_url": up.URL + "/base/echo",
		"static_headers": map[string]string{"X-Static": "from-template"}}
	h.expect(h.do("PUT", "/v1/providers/echo", bootstrapKey, echo), 200, "")

	// Two OAuth connections (one is disconnected before the move, one after) and a flow
	// whose callback comes after the move.
	alice, bob := f.connect("alice"), f.connect("bob")
	aliceAccess, aliceRefresh := f.storedTokens(alice)
	bobAccess, bobRefresh := f.storedTokens(bob)
	_, connectURL := f.session(map[string]any{"provider": "fosite", "end_user_id": "carol"})
	b := f.browser()
	pending := f.toCallback(b, connectURL)

	evil := newListener(t)
	movedFosite := withField(withField(withField(withField(fosite,
		"authorization_url", evil.URL+"/authorize"), "token_url", evil.URL+"/token"),
		"revocation_url", evil.URL+"/revoke"), "api_base_url", evil.URL)
	movedEcho := withField(withField(echo, "api_base_url", evil.URL+"/base"), "health_check_url", evil.URL+"/base/echo")
	// sweep makes alice's refresh and the API key's health check due and runs them (one
	// OAuth connection at a time: fosite's memory store is not safe for concurrent refreshes).
	sweep := func() {
		t.Helper()
		require.NoError(t, h.app.Store.DB().Model(&store.Connection{}).Where("id IN ?", []string{alice, apiKeyConn}).
			Update("next_refresh_at", time.Now().Add(-time.Hour).UTC()).Error)
		_, err := h.app.Refresher.Sweep(context.Background())
		require.NoError(t, err)
	}
	fwd := h.createKey("tokens:read")
	// calls makes every credential-bearing call the connections allow now.
	calls := func(wantOK bool) {
		t.Helper()
		f.clock.advance(31 * time.Second) // past the forced-refresh interval: the refresh reaches a provider
		r := h.do("GET", "/v1/proxy/"+alice+"/api", fwd, nil)
		k := h.do("GET", "/v1/proxy/"+apiKeyConn+"/echo", fwd, nil)
		rf := h.do("POST", "/v1/connections/"+alice+"/refresh", f.key, nil)
		if wantOK {
			require.NotEqual(t, http.StatusConflict, r.Status, r.Raw)
			require.Equal(t, http.StatusOK, k.Status, k.Raw)
			require.Equal(t, http.StatusOK, rf.Status, rf.Raw)
		} else {
			require.Equal(t, http.StatusConflict, r.Status, r.Raw)
			require.Equal(t, http.StatusConflict, k.Status, k.Raw)
			require.Equal(t, http.StatusConflict, rf.Status, rf.Raw)
		}
		sweep()
	}
	unchanged := func() {
		t.Helper()
		got := h.expect(h.do("GET", "/v1/providers/fosite", bootstrapKey, nil), 200, "")
		require.Equal(t, f.as.TokenURL(), got.Body["token_url"], "nothing changed")
		got = h.expect(h.do("GET", "/v1/providers/echo", bootstrapKey, nil), 200, "")
		require.Equal(t, up.URL+"/base", got.Body["api_base_url"], "nothing changed")
		for _, id := range []string{alice, bob, apiKeyConn} {
			c := h.expect(h.do("GET", "/v1/connections/"+id, f.key, nil), 200, "")
			require.Equal(t, "active", c.Body["status"])
		}
	}
	calls(true)

	// Door 1: a providers:write key.
	pw := h.createKey("providers:write")
	h.expect(h.do("PUT", "/v1/providers/fosite", pw, movedFosite), 403, "forbidden")
	h.expect(h.do("PUT", "/v1/providers/fosite", pw, withField(movedFosite, "client_secret", clientSecret)), 403, "forbidden")
	h.expect(h.do("PUT", "/v1/providers/echo", pw, movedEcho), 403, "forbidden")
	unchanged()
	calls(true)

	// Door 2: a signed control-plane document for this deployment.
	doc := controlplane.ConfigDocument{Version: 1, Workspaces: []controlplane.WorkspaceConfig{{
		WorkspaceID: store.DefaultWorkspaceID, Providers: []controlplane.ProviderConfigDoc{
			{Key: "fosite", AuthMode: "oauth2", ClientID: f.as.ClientID(), Scopes: []string{"read"},
				CallbackURLs: []string{f.callback}, ReturnURLs: []string{f.ret},
				AuthorizationURL: evil.URL + "/authorize", TokenURL: evil.URL + "/token",
				RevocationURL: evil.URL + "/revoke", Issuer: f.as.Issuer(), APIBaseURL: evil.URL},
			{Key: "echo", AuthMode: "api_key", APIBaseURL: evil.URL + "/base", HealthCheckURL: evil.URL + "/base/echo"},
		}}}}
	require.NoError(t, cp.SetConfig(doc))
	res, err := h.app.ControlPlane.Pull(context.Background(), h.app.ConfigImport())
	require.NoError(t, err)
	require.Equal(t, controlplane.PullRejected, res)
	refused, err := h.app.Store.ListAudit(context.Background(), store.DefaultWorkspaceID, "", 1000)
	require.NoError(t, err)
	var codes []string
	for _, e := range refused {
		if e.Type == controlplane.AuditConfigRefused {
			codes = append(codes, e.ErrorCode)
		}
	}
	require.Equal(t, []string{string(controlplane.ErrorConfigOriginChange)}, codes)
	time.Sleep(1100 * time.Millisecond) // the forwarding path's provider cache
	unchanged()
	calls(true)
	// Before the move: a disconnect revokes at the provider, not at the listener.
	revokes := f.as.RevokeCalls()
	h.expect(h.do("DELETE", "/v1/connections/"+bob, f.key, nil), 200, "")
	require.Greater(t, f.as.RevokeCalls(), revokes, "revoked where the tokens were granted")
	require.Zero(t, evil.hits(), "the refused doors sent nothing to the new origin")

	// Door 3: an admin key with the client secret moves the providers; the connections
	// need a fresh consent and their credentials never follow.
	adm := h.createKey("admin")
	r := h.expect(h.do("PUT", "/v1/providers/fosite", adm, withField(movedFosite, "client_secret", clientSecret)), 200, "")
	require.EqualValues(t, 1, r.Body["connections_needing_reauth"])
	r = h.expect(h.do("PUT", "/v1/providers/echo", adm, movedEcho), 200, "")
	require.EqualValues(t, 1, r.Body["connections_needing_reauth"])
	for _, id := range []string{alice, apiKeyConn} {
		c := h.expect(h.do("GET", "/v1/connections/"+id, f.key, nil), 200, "")
		require.Equal(t, "needs_reauth", c.Body["status"])
		require.Equal(t, "provider_origin_changed", c.Body["reason"])
	}
	time.Sleep(1100 * time.Millisecond)
	calls(false)
	cbRes, body := b.get(pending.String()) // the code exchange of a flow started before the move
	require.Equal(t, http.StatusConflict, cbRes.StatusCode, body)
	require.Len(t, refusals(t, h, "", "code_exchange"), 1)
	h.expect(h.do("DELETE", "/v1/connections/"+alice, f.key, nil), 200, "")
	h.expect(h.do("DELETE", "/v1/connections/"+apiKeyConn, f.key, nil), 200, "")
	sweep()

	evil.neverGot(t, aliceAccess, aliceRefresh, bobAccess, bobRefresh, clientSecret, upstreamKey,
		pending.Query().Get("code"))
	f.noLeaks()
}

// apiOrigin is the scheme://host of raw.
func apiOrigin(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Scheme + "://" + u.Host
}

// withField is a copy of m with k set to v.
func withField(m map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for key, val := range m {
		out[key] = val
	}
	out[k] = v
	return out
}

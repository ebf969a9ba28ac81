package proxy_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// TestConnectTypedConnectionConfig (both dialects): a provider whose endpoints hold a
// {tenant} path segment (fosite serving every tenant). A session without
// connection_config shows the end user a form field; a bad typed value is 400
// invalid_connection_config and starts nothing; a good one sends the browser to that
// tenant's authorization URL, the code exchange and the refresh go to its token URL, and
// the connection shows its connection_config.
func TestConnectTypedConnectionConfig(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFlowEnv(t, dialect, oauthtest.Options{AutoLogin: true, TenantPaths: true}, map[string]string{"AUTHPIPE_PUBLIC_URL": "self"})
			base := f.as.URL + "/{tenant}"
			f.h.expect(f.h.do("PUT", "/v1/providers/tenanted", bootstrapKey, map[string]any{
				"display_name": "Tenanted", "auth_mode": "oauth2", "client_id": f.as.ClientID(), "client_secret": clientSecret,
				"scopes": []string{"read"}, "callback_urls": []string{f.callback}, "return_urls": []string{f.ret},
				"authorization_url": base + "/authorize", "token_url": base + "/token", "revocation_url": base + "/revoke",
				"api_base_url": base + "/api", "client_auth": "client_secret_basic",
				"connection_config": []map[string]any{{"name": "tenant", "display_name": "Your team", "enum": []string{"acme", "globex"}}},
			}), 200, "")
			f.h.expect(f.h.do("POST", "/v1/connect/sessions", f.key, map[string]any{"provider": "tenanted", "end_user_id": "u",
				"connection_config": map[string]string{"tenant": "initech"}}), 400, "invalid_connection_config")

			_, connectURL := f.session(map[string]any{"provider": "tenanted", "end_user_id": "u"})
			b := f.browser()
			res, page := b.get(connectURL)
			require.Equal(t, http.StatusOK, res.StatusCode)
			require.Contains(t, page, `<label for="config_tenant">Your team</label>`)
			require.Contains(t, page, `<select id="config_tenant" name="config_tenant" required autofocus>`)
			token, ok := oauthtest.ConnectFormToken(page)
			require.True(t, ok)
			post := func(tenant string) (*http.Response, string) {
				req, _ := http.NewRequest(http.MethodPost, connectURL, strings.NewReader(url.Values{"form_token": {token},
					"config_tenant": {tenant}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Origin", f.origin)
				req.Header.Set("Accept", "application/json")
				return b.do(req)
			}
			res, body := post("evil.example")
			require.Equal(t, http.StatusBadRequest, res.StatusCode, body)
			require.Contains(t, body, `"code":"invalid_connection_config"`)
			require.NotContains(t, body, "evil.example")

			res, _ = post("acme")
			authURL := location(t, res)
			require.Equal(t, f.as.URL+"/acme/authorize", authURL.Scheme+"://"+authURL.Host+authURL.Path)
			res, _ = b.get(authURL.String())
			require.Equal(t, http.StatusSeeOther, res.StatusCode)
			cb, err := url.Parse(res.Header.Get("Location"))
			require.NoError(t, err)
			id := f.connected(b, cb)
			require.Equal(t, "acme", f.as.LastTenant(), "the code went to the tenant's token URL")
			view := f.h.expect(f.h.do("GET", "/v1/connections/"+id, f.key, nil), 200, "")
			require.Equal(t, map[string]any{"tenant": "acme"}, view.Body["connection_config"])

			calls := f.as.TokenCalls()
			f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/refresh", f.key, nil), 200, "")
			require.Equal(t, calls+1, f.as.TokenCalls())
			require.Equal(t, "acme", f.as.LastTenant(), "the refresh goes to the connection's filled token URL")
		})
	}
}

// TestHostedAPIKeyFormTypedConnectionConfig (both dialects): an api_key provider whose API
// base holds a {tenant} path segment. A session without connection_config shows the end
// user the tenant field and the key field on one form; a bad tenant is 400
// invalid_connection_config and stores nothing (the link stays usable); a good one stores
// the connection (oauthflow.NewAPIKeyConnection, as POST /v1/connections) with its
// connection_config, and forwarding goes to the tenant's filled API base only.
func TestHostedAPIKeyFormTypedConnectionConfig(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFlowEnv(t, dialect, oauthtest.Options{AutoLogin: true}, map[string]string{"AUTHPIPE_PUBLIC_URL": "self"})
			up := newUpstream(t)
			f.h.expect(f.h.do("PUT", "/v1/providers/tenanted-key", bootstrapKey, map[string]any{
				"display_name": "Tenanted Key", "auth_mode": "api_key", "api_base_url": up.URL + "/{tenant}/api",
				"api_key_auth": "header", "api_key_header": "X-Upstream-Key", "return_urls": []string{f.ret},
				"connection_config": []map[string]any{{"name": "tenant", "display_name": "Your team", "pattern": "[a-z0-9-]{1,20}"}},
			}), 200, "")
			_, connectURL := f.session(map[string]any{"provider": "tenanted-key", "end_user_id": "u", "return_url": f.ret})
			b := f.browser()
			res, page := b.get(connectURL)
			require.Equal(t, http.StatusOK, res.StatusCode)
			require.Contains(t, page, `<input id="config_tenant" name="config_tenant" required autofocus`)
			require.Contains(t, page, `id="api_key" name="api_key" required autocomplete="off"`)
			token, ok := oauthtest.ConnectFormToken(page)
			require.True(t, ok)
			post := func(tenant string) (*http.Response, string) {
				req, _ := http.NewRequest(http.MethodPost, connectURL, strings.NewReader(url.Values{"form_token": {token},
					"config_tenant": {tenant}, "api_key": {upstreamKey}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Origin", f.origin)
				req.Header.Set("Accept", "application/json")
				return b.do(req)
			}
			res, body := post("evil.example/x")
			require.Equal(t, http.StatusBadRequest, res.StatusCode, body)
			require.Contains(t, body, `"code":"invalid_connection_config"`)
			list := f.h.expect(f.h.do("GET", "/v1/connections", f.key, nil), 200, "")
			require.Empty(t, list.Body["connections"], "nothing half-written")

			res, body = post("acme")
			require.Equal(t, http.StatusSeeOther, res.StatusCode, body)
			next, err := url.Parse(res.Header.Get("Location"))
			require.NoError(t, err)
			require.Equal(t, "connected", next.Query().Get("status"))
			id := next.Query().Get("connection_id")
			require.NotEmpty(t, id)
			view := f.h.expect(f.h.do("GET", "/v1/connections/"+id, f.key, nil), 200, "")
			require.Equal(t, map[string]any{"tenant": "acme"}, view.Body["connection_config"])

			hits := up.hits.Load()
			send(t, f.h.srv.URL, "GET", "/v1/proxy/"+id+"/things", bearerHdr(f.key), nil)
			require.Equal(t, hits+1, up.hits.Load())
			require.Equal(t, "/acme/api/things", up.last(t).Path, "the connection's filled API base")
			require.Equal(t, upstreamKey, up.last(t).Header.Get("X-Upstream-Key"))
		})
	}
}

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
			require.Contains(t, page, `<select id="config_tenant" name="config_tenant" required>`)
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

package proxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// TestProviderOriginChangeNeedsAdmin: a providers:write key may change a provider within
// its origins (paths, scopes, names), never its origins (403, nothing changed); an admin
// may, and in the same write every connection of the provider becomes needs_reauth with
// reason provider_origin_changed (connection.needs_reauth audited and delivered as a
// webhook), the response counting them. A fresh connection afterwards is active at once.
func TestProviderOriginChangeNeedsAdmin(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			h := newHarness(t, d, nil)
			pw := h.createKey("providers:write")
			adm := h.createKey("admin")
			cw := h.createKey("connections:write", "tokens:read")
			// The application's webhook endpoint (events from now on are delivered).
			var mu sync.Mutex
			var hooks []refresher.WebhookPayload
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				var p refresher.WebhookPayload
				require.NoError(t, json.Unmarshal(b, &p))
				mu.Lock()
				hooks = append(hooks, p)
				mu.Unlock()
			}))
			t.Cleanup(recv.Close)
			h.expect(h.do("PUT", "/v1/webhooks", adm, map[string]any{"url": recv.URL + "/hook"}), 200, "")
			wh, err := refresher.NewWebhooks(refresher.WebhookConfig{}, h.app.Store, h.app.Creds, recv.Client(),
				func() time.Time { return time.Now() }, nil)
			require.NoError(t, err)
			keyed := map[string]any{"auth_mode": "api_key", "api_base_url": "https://api.example.com/v1",
				"health_check_url": "https://api.example.com/v1/me"}
			r := h.expect(h.do("PUT", "/v1/providers/keyed", pw, keyed), 200, "")
			require.EqualValues(t, 0, r.Body["connections_needing_reauth"])
			var conns []string
			for _, u := range []string{"u1", "u2", "u3"} {
				c := h.expect(h.do("POST", "/v1/connections", cw, map[string]any{"provider": "keyed", "end_user_id": u,
					"api_key": "sk_live_abcdefghijklmnop"}), 201, "")
				conns = append(conns, c.Body["id"].(string))
			}
			h.expect(h.do("DELETE", "/v1/connections/"+conns[2], cw, nil), 200, "")
			status := func(id string) (string, any) {
				t.Helper()
				c := h.expect(h.do("GET", "/v1/connections/"+id, cw, nil), 200, "")
				return c.Body["status"].(string), c.Body["reason"]
			}

			// providers:write: another origin is refused whole.
			for field, u := range map[string]string{"api_base_url": "https://collector.example.net/v1",
				"health_check_url": "https://api.example.com:8443/me"} {
				moved := map[string]any{}
				for k, v := range keyed {
					moved[k] = v
				}
				moved[field] = u
				h.expect(h.do("PUT", "/v1/providers/keyed", pw, moved), 403, "forbidden")
			}
			got := h.expect(h.do("GET", "/v1/providers/keyed", pw, nil), 200, "")
			require.Equal(t, "https://api.example.com/v1", got.Body["api_base_url"], "nothing changed")
			st, reason := status(conns[0])
			require.Equal(t, "active", st)
			require.Nil(t, reason)

			// providers:write: the same origins with other paths and a name.
			keyed["api_base_url"], keyed["display_name"] = "https://api.example.com/v2", "Keyed v2"
			r = h.expect(h.do("PUT", "/v1/providers/keyed", pw, keyed), 200, "")
			require.EqualValues(t, 0, r.Body["connections_needing_reauth"])
			st, _ = status(conns[0])
			require.Equal(t, "active", st, "connections untouched")

			// admin: the origin moves; the live connections need a fresh consent.
			keyed["api_base_url"] = "https://api.example.org/v2"
			r = h.expect(h.do("PUT", "/v1/providers/keyed", adm, keyed), 200, "")
			require.EqualValues(t, 2, r.Body["connections_needing_reauth"])
			require.Equal(t, "https://api.example.org/v2", r.Body["api_base_url"])
			for _, id := range conns[:2] {
				st, reason := status(id)
				require.Equal(t, "needs_reauth", st)
				require.Equal(t, "provider_origin_changed", reason)
				h.expect(h.do("GET", "/v1/connections/"+id+"/token", cw, nil), 409, "needs_reauth")
			}
			st, reason = status(conns[2])
			require.Equal(t, "disconnected", st)
			require.Nil(t, reason)
			fresh := h.expect(h.do("POST", "/v1/connections", cw, map[string]any{"provider": "keyed", "end_user_id": "u4",
				"api_key": "sk_live_qrstuvwxyz012345"}), 201, "")
			require.Equal(t, "active", fresh.Body["status"], "a fresh connection after the move works at once")

			// Audited: provider.updated and one connection.needs_reauth per connection.
			evs := h.expect(h.do("GET", "/v1/audit?limit=1000", adm, nil), 200, "")
			reauth := map[string]string{}
			for _, e := range evs.Body["events"].([]any) {
				ev := e.(map[string]any)
				if ev["type"] == "connection.needs_reauth" {
					reauth[ev["connection_id"].(string)] = ev["error_code"].(string)
				}
			}
			require.Equal(t, map[string]string{conns[0]: "provider_origin_changed", conns[1]: "provider_origin_changed"}, reauth)

			// Delivered as webhooks connection.needs_reauth.
			_, err = wh.Run(t.Context())
			require.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			needs := map[string]string{}
			for _, p := range hooks {
				if p.Type == refresher.EventNeedsReauth {
					needs[p.Data.ConnectionID] = p.Data.ErrorCode
					require.Equal(t, "keyed", p.Data.Provider)
				}
			}
			require.Equal(t, map[string]string{conns[0]: "provider_origin_changed", conns[1]: "provider_origin_changed"}, needs)
		})
	}
}

// TestOAuthOriginChangeNeedsTheClientSecret: moving an oauth2 provider to a new
// authorization server needs admin and the client secret in the same request (400
// client_secret_required without it, nothing changed); after the move the old
// connection needs_reauth and never reaches the new server, and a fresh connect flow
// against the new server works at once.
func TestOAuthOriginChangeNeedsTheClientSecret(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			f := newFlow(t, d, oauthtest.Options{AutoLogin: true})
			b := f.browser()
			_, connectURL := f.session(nil)
			old := f.connected(b, f.toCallback(b, connectURL))

			moved := oauthtest.New(t, oauthtest.Options{AutoLogin: true, ClientSecret: clientSecret, RedirectURIs: []string{f.callback}})
			body := map[string]any{
				"display_name": "Fosite", "auth_mode": "oauth2", "client_id": moved.ClientID(),
				"scopes": []string{"read"}, "callback_urls": []string{f.callback}, "return_urls": []string{f.ret},
				"authorization_url": moved.AuthorizationURL(), "token_url": moved.TokenURL(), "revocation_url": moved.RevocationURL(),
				"issuer": moved.Issuer(), "token_auth_method": "client_secret_basic",
			}
			adm := f.h.createKey("admin")
			f.h.expect(f.h.do("PUT", "/v1/providers/fosite", f.h.createKey("providers:write"), body), 403, "forbidden")
			f.h.expect(f.h.do("PUT", "/v1/providers/fosite", adm, body), 400, "client_secret_required")
			got := f.h.expect(f.h.do("GET", "/v1/providers/fosite", adm, nil), 200, "")
			require.Equal(t, f.as.TokenURL(), got.Body["token_url"], "nothing changed")
			r := f.h.expect(f.h.do("GET", "/v1/connections/"+old, f.key, nil), 200, "")
			require.Equal(t, "active", r.Body["status"])

			body["client_secret"] = clientSecret
			r = f.h.expect(f.h.do("PUT", "/v1/providers/fosite", adm, body), 200, "")
			require.EqualValues(t, 1, r.Body["connections_needing_reauth"])
			r = f.h.expect(f.h.do("GET", "/v1/connections/"+old, f.key, nil), 200, "")
			require.Equal(t, "needs_reauth", r.Body["status"])
			require.Equal(t, "provider_origin_changed", r.Body["reason"])
			f.h.expect(f.h.do("GET", "/v1/connections/"+old+"/token", f.key, nil), 409, "needs_reauth")
			f.h.expect(f.h.do("POST", "/v1/connections/"+old+"/refresh", f.key, nil), 409, "needs_reauth")
			require.Zero(t, moved.TokenCalls(), "the old connection's refresh token never reaches the new origin")

			f.as = moved
			_, connectURL = f.session(nil)
			id := f.connected(b, f.toCallback(b, connectURL))
			require.NotEqual(t, old, id)
			require.EqualValues(t, 1, moved.TokenCalls(), "one code exchange at the new origin")
			require.True(t, moved.Active(t.Context(), f.token(id)), "the new server accepts the new token")

			// Re-consent restores the old connection, reason cleared.
			r = f.h.expect(f.h.do("POST", "/v1/connections/"+old+"/reconnect", f.key, nil), 201, "")
			again := f.connected(b, f.toCallback(b, f.h.srv.URL+"/v1/connect/"+r.Body["id"].(string)))
			require.Equal(t, old, again)
			r = f.h.expect(f.h.do("GET", "/v1/connections/"+old, f.key, nil), 200, "")
			require.Equal(t, "active", r.Body["status"])
			require.Nil(t, r.Body["reason"])
			var c store.Connection
			require.NoError(t, f.h.app.Store.DB().Where("id = ?", old).Take(&c).Error)
			require.Empty(t, c.StatusReason)
			f.noLeaks()
		})
	}
}

// TestProviderViewsSayOriginsDifferFromTemplate: a provider under a catalog template's
// key, or naming a template, says whether its origins differ from the template's. Taking
// the key of an api_key template whose connections resolve to the catalog entry with
// other origins is an origin change of those connections (admin).
func TestProviderViewsSayOriginsDifferFromTemplate(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	pw := h.createKey("providers:write")
	adm := h.createKey("admin")
	r := h.expect(h.do("PUT", "/v1/providers/github", pw, map[string]any{"template": "github", "client_id": "Iv1.x"}), 200, "")
	require.Equal(t, false, r.Body["origins_differ_from_template"])
	r = h.expect(h.do("PUT", "/v1/providers/github", pw, map[string]any{"template": "github", "client_id": "Iv1.x",
		"scopes": []string{"repo", "read:user"}}), 200, "")
	require.Equal(t, false, r.Body["origins_differ_from_template"], "scopes are not origins")

	// The template's key with other origins: shown, not silent.
	r = h.expect(h.do("PUT", "/v1/providers/gitlab", pw, map[string]any{"auth_mode": "oauth2", "client_id": "c",
		"authorization_url": "https://gitlab.example.com/oauth/authorize", "token_url": "https://gitlab.example.com/oauth/token"}), 200, "")
	require.Equal(t, true, r.Body["origins_differ_from_template"])
	// A template named, an origin overridden.
	r = h.expect(h.do("PUT", "/v1/providers/work-gh", pw, map[string]any{"template": "github", "client_id": "Iv1.x",
		"api_base_url": "https://ghe.example.com/api/v3"}), 200, "")
	require.Equal(t, true, r.Body["origins_differ_from_template"])
	r = h.expect(h.do("PUT", "/v1/providers/acme", pw, map[string]any{"auth_mode": "api_key",
		"api_base_url": "https://api.acme.example"}), 200, "")
	require.Equal(t, false, r.Body["origins_differ_from_template"], "no template involved")
	list := h.expect(h.do("GET", "/v1/providers", pw, nil), 200, "")
	differ := map[string]bool{}
	for _, p := range list.Body["providers"].([]any) {
		v := p.(map[string]any)
		differ[v["key"].(string)] = v["origins_differ_from_template"].(bool)
	}
	require.Equal(t, map[string]bool{"acme": false, "github": false, "gitlab": true, "work-gh": true}, differ)

	// stripe connections resolve to the catalog's api_key template until the workspace
	// configures "stripe": configuring it with other origins moves them.
	cw := h.createKey("connections:write", "tokens:read")
	c := h.expect(h.do("POST", "/v1/connections", cw, map[string]any{"provider": "stripe", "end_user_id": "u",
		"api_key": "sk_live_abcdefghijklmnop"}), 201, "")
	shadow := map[string]any{"auth_mode": "api_key", "api_base_url": "https://collector.example.net"}
	h.expect(h.do("PUT", "/v1/providers/stripe", pw, shadow), 403, "forbidden")
	h.expect(h.do("GET", "/v1/providers/stripe", pw, nil), 404, "not_found")
	r = h.expect(h.do("PUT", "/v1/providers/stripe", pw, map[string]any{"template": "stripe"}), 200, "")
	require.Equal(t, false, r.Body["origins_differ_from_template"])
	r = h.expect(h.do("PUT", "/v1/providers/stripe", adm, shadow), 200, "")
	require.Equal(t, true, r.Body["origins_differ_from_template"])
	require.EqualValues(t, 1, r.Body["connections_needing_reauth"])
	got := h.expect(h.do("GET", "/v1/connections/"+c.Body["id"].(string), cw, nil), 200, "")
	require.Equal(t, "needs_reauth", got.Body["status"])
}

package proxy_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

func TestAPIKeyConnectionsEndToEnd(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			h := newHarness(t, d, nil)
			writer := h.createKey("connections:write")
			reader := h.createKey("tokens:read")

			c := h.expect(h.do("POST", "/v1/connections", writer, map[string]any{
				"provider": "stripe", "end_user_id": "user-42", "api_key": "sk_live_abcdefghijklmnopqrstuvwxyz",
			}), 201, "")
			id := c.Body["id"].(string)
			require.True(t, strings.HasPrefix(id, "conn_"))
			require.Equal(t, "api_key", c.Body["auth_mode"])
			require.Equal(t, "active", c.Body["status"])
			require.Equal(t, "sk_live_", c.Body["credential_prefix"], "masked: a prefix only")
			require.NotContains(t, c.Raw, "abcdefghijklmnop")

			got := h.expect(h.do("GET", "/v1/connections/"+id, reader, nil), 200, "")
			require.Equal(t, "user-42", got.Body["end_user_id"])
			require.NotContains(t, got.Raw, "abcdefghijklmnop", "metadata only")

			tok := h.expect(h.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")
			require.Equal(t, "api_key", tok.Body["credential_type"])
			require.Equal(t, "sk_live_abcdefghijklmnopqrstuvwxyz", tok.Body["api_key"])
			require.Equal(t, id, tok.Body["connection_id"])
			require.Equal(t, "no-store", tok.Header.Get("Cache-Control"))
			require.Equal(t, "application/json; charset=utf-8", tok.Header.Get("Content-Type"))
			require.Equal(t, strconv.Itoa(len(tok.Raw)), tok.Header.Get("Content-Length"), "a sized body, not chunked")
			for _, k := range []string{"Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options",
				"Referrer-Policy", "Content-Security-Policy", "X-Request-Id"} {
				require.Len(t, tok.Header.Values(k), 1, k)
			}

			h.expect(h.do("GET", "/v1/connections/"+id+"/token", writer, nil), 403, "forbidden")

			// Listing, filters and cursors.
			for i := 0; i < 4; i++ {
				h.expect(h.do("POST", "/v1/connections", writer, map[string]any{
					"provider": "openai", "end_user_id": fmt.Sprintf("user-%d", i), "api_key": "sk-proj-0123456789abcdef0123",
				}), 201, "")
			}
			page := h.expect(h.do("GET", "/v1/connections?limit=2", reader, nil), 200, "")
			require.Len(t, page.Body["connections"], 2)
			next := page.Body["next_cursor"].(string)
			require.NotEmpty(t, next)
			rest := h.expect(h.do("GET", "/v1/connections?limit=10&cursor="+next, reader, nil), 200, "")
			require.Len(t, rest.Body["connections"], 3)
			require.Equal(t, "", rest.Body["next_cursor"])
			byUser := h.expect(h.do("GET", "/v1/connections?end_user_id=user-42", reader, nil), 200, "")
			require.Len(t, byUser.Body["connections"], 1)
			h.expect(h.do("GET", "/v1/connections?status=bogus", reader, nil), 400, "invalid_request")

			// Disconnect: 200 metadata, then the token is gone (410).
			del := h.expect(h.do("DELETE", "/v1/connections/"+id, writer, nil), 200, "")
			require.Equal(t, "disconnected", del.Body["status"])
			h.expect(h.do("GET", "/v1/connections/"+id+"/token", reader, nil), 410, "disconnected")
			h.expect(h.do("GET", "/v1/connections/conn_doesnotexist/token", reader, nil), 404, "not_found")

			// The audit chain recorded it all and verifies.
			auditor := h.createKey("audit:read")
			h.app.Audit.Stop(t.Context()) // flush batched token.read events
			evs := h.expect(h.do("GET", "/v1/audit?limit=1000", auditor, nil), 200, "")
			types := map[string]int{}
			var reads []string
			for _, e := range evs.Body["events"].([]any) {
				ev := e.(map[string]any)
				types[ev["type"].(string)]++
				if ev["type"] == "token.read" {
					reads = append(reads, fmt.Sprint(ev["outcome"], " ", ev["error_code"], " ", ev["connection_id"], " ", ev["count"]))
					require.NotEmpty(t, ev["first_at"])
					require.NotEmpty(t, ev["last_at"])
				}
			}
			require.Equal(t, 5, types["connection.created"])
			require.Equal(t, 1, types["connection.disconnected"])
			require.ElementsMatch(t, []string{"success <nil> " + id + " 1", "failure forbidden " + id + " 1",
				"failure disconnected " + id + " 1", "failure not_found conn_doesnotexist 1"}, reads,
				"every read accounted, served or refused: 200, 403 (no scope), 410 after the disconnect, 404")
			require.GreaterOrEqual(t, types["api_key.created"], 4)
			v := h.expect(h.do("GET", "/v1/audit/verify", auditor, nil), 200, "")
			require.Equal(t, true, v.Body["ok"])
		})
	}
}

func TestAuthentication(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	admin := h.createKey("admin")
	revoked := h.createKey("tokens:read")
	list := h.expect(h.do("GET", "/v1/api-keys", admin, nil), 200, "")
	var revokedID string
	for _, k := range list.Body["api_keys"].([]any) {
		km := k.(map[string]any)
		require.NotContains(t, km, "key", "a listing never shows a key")
		if strings.HasPrefix(revoked[3:], km["prefix"].(string)) && km["scopes"].([]any)[0] == "tokens:read" {
			revokedID = km["id"].(string)
		}
	}
	require.NotEmpty(t, revokedID)
	h.expect(h.do("DELETE", "/v1/api-keys/"+revokedID, admin, nil), 204, "")

	// Other workspace's key.
	ws := h.expect(h.do("POST", "/v1/workspaces", bootstrapKey, map[string]any{"name": "acme"}), 201, "")
	otherKey := ws.Body["api_key"].(map[string]any)["key"].(string)
	require.True(t, strings.HasPrefix(otherKey, "ap_"))

	cases := map[string]struct {
		key    string
		header map[string]string
	}{
		"missing":   {key: ""},
		"malformed": {key: "not-a-key"},
		"unknown":   {key: "ap_" + strings.Repeat("x", 43)},
		"revoked":   {key: revoked},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := h.expect(h.do("GET", "/v1/connections", tc.key, nil), 401, "unauthorized")
			require.NotContains(t, r.Raw, "revoked", "every 401 looks the same")
			// RFC 6750 section 3: a challenge on every 401; invalid_token when a key was presented.
			want := `Bearer realm="authpipe", error="invalid_token"`
			if tc.key == "" {
				want = `Bearer realm="authpipe"`
			}
			require.Equal(t, []string{want}, r.Header.Values("WWW-Authenticate"))
		})
	}
	// A key presented for a workspace that is not its own.
	req := h.do("GET", "/v1/workspaces", bootstrapKey, nil)
	require.Equal(t, 200, req.Status)

	// Workspace isolation: another workspace's connection is 404.
	c := h.expect(h.do("POST", "/v1/connections", otherKey, map[string]any{
		"provider": "stripe", "end_user_id": "u", "api_key": "sk_test_000000000000000000",
	}), 201, "")
	h.expect(h.do("GET", "/v1/connections/"+c.Body["id"].(string), admin, nil), 404, "not_found")
	h.expect(h.do("GET", "/v1/connections/"+c.Body["id"].(string)+"/token", admin, nil), 404, "not_found")
	h.expect(h.do("DELETE", "/v1/connections/"+c.Body["id"].(string), admin, nil), 404, "not_found")

	// Scopes: admin does not imply workspaces:write.
	h.expect(h.do("POST", "/v1/workspaces", admin, map[string]any{"name": "nope"}), 403, "forbidden")
	h.expect(h.do("GET", "/v1/workspaces", otherKey, nil), 403, "forbidden")
	h.expect(h.do("POST", "/v1/api-keys", admin, map[string]any{"name": "x", "scopes": []string{"workspaces:write"}}), 403, "forbidden")
	h.expect(h.do("POST", "/v1/api-keys", admin, map[string]any{"name": "x", "scopes": []string{"bogus"}}), 400, "invalid_request")
	h.expect(h.do("POST", "/v1/workspaces", bootstrapKey, map[string]any{"name": "acme"}), 409, "conflict")
}

func TestHTTPPlumbing(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	r := h.expect(h.do("GET", "/healthz", "", nil), 200, "")
	for hdr, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
		"Cache-Control": "no-store",
	} {
		require.Equal(t, want, r.Header.Get(hdr), hdr)
	}
	require.NotEmpty(t, r.Header.Get("Strict-Transport-Security"))
	require.NotEmpty(t, r.Header.Get("X-Request-Id"))
	h.expect(h.do("GET", "/readyz", "", nil), 200, "")

	big := `{"name":"` + strings.Repeat("a", 1<<20) + `"}`
	h.expect(h.do("POST", "/v1/api-keys", bootstrapKey, big), 413, "payload_too_large")
	h.expect(h.do("POST", "/v1/api-keys", bootstrapKey, "{not json"), 400, "invalid_request")
	h.expect(h.do("POST", "/v1/api-keys", bootstrapKey, "[1,2]"), 400, "invalid_request")
	h.expect(h.do("POST", "/v1/api-keys", bootstrapKey, strings.Repeat("[", 100)+strings.Repeat("]", 100)), 400, "invalid_request")
	h.expect(h.do("GET", "/v1/nope", bootstrapKey, nil), 404, "not_found")
	h.expect(h.do("PATCH", "/v1/connections", bootstrapKey, nil), 405, "method_not_allowed")
	h.expect(h.do("GET", "/v1/audit?limit=5000", bootstrapKey, nil), 400, "invalid_request")
}

func TestProvidersAPI(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	pw := h.createKey("providers:write")
	custom := map[string]any{
		"auth_mode": "oauth2", "client_id": "Iv1.abc", "client_secret": "s3cr3tSENTINELclient",
		"authorization_url": "https://auth.example.com/authorize", "token_url": "https://auth.example.com/token",
		"scopes":        []string{"read"},
		"callback_urls": []string{"https://proxy.example.com/v1/oauth/callback"},
		"return_urls":   []string{"https://app.example.com/done"},
	}
	r := h.expect(h.do("PUT", "/v1/providers/acme", pw, custom), 200, "")
	require.Equal(t, true, r.Body["client_secret_set"])
	require.Equal(t, "s3cr", r.Body["client_secret_prefix"])
	require.NotContains(t, r.Raw, "SENTINEL")
	require.NotContains(t, r.Body, "client_secret")

	// Template: every field the caller leaves out comes from the catalog.
	gh := h.expect(h.do("PUT", "/v1/providers/github", pw, map[string]any{"template": "github", "client_id": "Iv1.x"}), 200, "")
	require.Equal(t, "https://github.com/login/oauth/authorize", gh.Body["authorization_url"])
	require.Equal(t, false, gh.Body["client_secret_set"])
	requireCatalogServed(t, h.expect(h.do("GET", "/v1/catalog", pw, nil), 200, "").Body)

	// An update without client_secret keeps the secret.
	delete(custom, "client_secret")
	r = h.expect(h.do("PUT", "/v1/providers/acme", pw, custom), 200, "")
	require.Equal(t, true, r.Body["client_secret_set"])

	bad := func(field string, value any, code string) {
		t.Helper()
		body := map[string]any{}
		for k, v := range custom {
			body[k] = v
		}
		body[field] = value
		h.expect(h.do("PUT", "/v1/providers/bad", pw, body), 400, code)
		h.expect(h.do("GET", "/v1/providers/bad", pw, nil), 404, "not_found") // nothing half-written
	}
	for _, u := range []string{"https://*.example.com/cb", "https://x.example.com/cb#frag", "https://u:p@x.example.com/cb",
		"http://x.example.com/cb", "/relative", "https://X.example.com/cb", "javascript:alert(1)"} {
		bad("callback_urls", []string{u}, "invalid_callback_url")
		bad("return_urls", []string{u}, "invalid_callback_url")
	}
	bad("token_url", "https://169.254.169.254/token", "unsafe_url")
	bad("token_url", "https://10.0.0.1/token", "unsafe_url")
	bad("auth_mode", "saml", "invalid_request")
	bad("template", "no-such-template", "invalid_request")
	bad("min_tls_version", "1.0", "invalid_request")
	bad("pins", []string{"sha1/AAAAAAAAAAAAAAAAAAAAAAAAAAA="}, "invalid_request")
	h.expect(h.do("PUT", "/v1/providers/acme", h.createKey("tokens:read"), custom), 403, "forbidden")

	list := h.expect(h.do("GET", "/v1/providers", pw, nil), 200, "")
	require.Len(t, list.Body["providers"], 2)
	h.expect(h.do("DELETE", "/v1/providers/acme", pw, nil), 204, "")
	h.expect(h.do("GET", "/v1/providers/acme", pw, nil), 404, "not_found")
}

func TestUnsafeProviderURLsWithoutAllowList(t *testing.T) {
	h := newHarness(t, "sqlite", map[string]string{"AUTHPIPE_OUTBOUND_ALLOW_CIDRS": ""})
	for _, u := range []string{"https://localhost/authorize", "https://127.0.0.1/a", "https://[::1]/a",
		"https://2130706433/a", "https://0x7f.1/a", "https://[::ffff:127.0.0.1]/a", "https://foo.localhost/a"} {
		h.expect(h.do("PUT", "/v1/providers/p", bootstrapKey, map[string]any{
			"client_id": "c", "authorization_url": u, "token_url": "https://auth.example.com/token",
			"callback_urls": []string{"https://proxy.example.com/v1/oauth/callback"},
		}), 400, "unsafe_url")
	}
}

func TestWorkspacesHaveTheirOwnDEKs(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			h := newHarness(t, d, nil)
			ws := h.expect(h.do("POST", "/v1/workspaces", bootstrapKey, map[string]any{"name": "tenant-a"}), 201, "")
			id := ws.Body["id"].(string)
			require.True(t, strings.HasPrefix(id, "ws_"))
			key := ws.Body["api_key"].(map[string]any)
			require.Equal(t, []any{"admin"}, key["scopes"])
			var n int64
			require.NoError(t, h.app.Store.DB().Table("deks").Where("workspace_id = ?", id).Count(&n).Error)
			require.EqualValues(t, 2, n, "one DEK per purpose, created with the workspace")
			list := h.expect(h.do("GET", "/v1/workspaces", bootstrapKey, nil), 200, "")
			require.Len(t, list.Body["workspaces"], 2)
		})
	}
}

func TestWorkspaceAuditRetentionSetting(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	r := h.expect(h.do("PATCH", "/v1/workspaces/ws_default", bootstrapKey, map[string]any{"audit_retention": "720h"}), 200, "")
	require.Equal(t, "720h0m0s", r.Body["audit_retention"])
	list := h.expect(h.do("GET", "/v1/workspaces", bootstrapKey, nil), 200, "")
	require.Equal(t, "720h0m0s", list.Body["workspaces"].([]any)[0].(map[string]any)["audit_retention"])
	for _, bad := range []any{"1h", "100000h", "soon", 12} {
		h.expect(h.do("PATCH", "/v1/workspaces/ws_default", bootstrapKey, map[string]any{"audit_retention": bad}), 400, "invalid_request")
	}
	h.expect(h.do("PATCH", "/v1/workspaces/ws_nope", bootstrapKey, map[string]any{"audit_retention": "720h"}), 404, "not_found")
	h.expect(h.do("PATCH", "/v1/workspaces/ws_default", h.createKey("admin"), map[string]any{"audit_retention": "720h"}), 403, "forbidden")
	r = h.expect(h.do("PATCH", "/v1/workspaces/ws_default", bootstrapKey, `{"audit_retention": null}`), 200, "")
	require.NotContains(t, r.Body, "audit_retention", "back to the deployment's")
}

// requireCatalogServed checks a GET /v1/catalog body against the embedded catalog: every
// entry, once, in name order, with its auth mode, categories and documentation link, and
// every auth mode represented.
func requireCatalogServed(t *testing.T, body map[string]any) {
	t.Helper()
	want, err := oauthflow.LoadCatalog()
	require.NoError(t, err)
	got, ok := body["providers"].([]any)
	require.True(t, ok, "providers is a list")
	require.Len(t, got, want.Len(), "GET /v1/catalog returns every catalog entry")
	modes := map[string]bool{}
	for i, p := range want.All() {
		e, ok := got[i].(map[string]any)
		require.True(t, ok)
		require.Equal(t, p.Name, e["name"], "entry %d in name order", i)
		require.Equal(t, string(p.AuthMode), e["auth_mode"], p.Name)
		require.Equal(t, p.DocsURL, e["docs_url"], p.Name)
		require.NotEmpty(t, e["docs_url"], p.Name)
		cats, ok := e["categories"].([]any)
		require.True(t, ok && len(cats) > 0, "%s has categories", p.Name)
		require.Len(t, cats, len(p.Categories), p.Name)
		if p.AssertionAudience != "" {
			require.Equal(t, p.AssertionAudience, e["assertion_audience"], p.Name)
		}
		modes[p.Name] = true
		modes["mode:"+string(p.AuthMode)] = true
	}
	for _, m := range oauthflow.AuthModes {
		require.True(t, modes["mode:"+string(m)], "GET /v1/catalog has a %s entry", m)
	}
}

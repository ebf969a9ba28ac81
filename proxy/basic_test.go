package proxy_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// basicUser and basicPassword are a basic connection's credential; the password is a
// sentinel that must reach only the provider (as HTTP Basic) and a tokens:read caller.
const (
	basicUser     = "ann.example@acme.test"
	basicPassword = "SENTINEL-basic-pw:with colon \"quote\" é"
)

// basicUpstream is a provider API over TLS (a test CA the proxy trusts through
// AUTHPIPE_OUTBOUND_CA_FILE) that takes HTTP Basic: /api/me answers 200 to the right
// pair and 401 otherwise (the health check); /api/echo echoes the password in a response
// header, as a careless provider might. It records every Authorization header it got.
type basicUpstream struct {
	*httptest.Server
	mu    sync.Mutex
	auths [][]string
	pass  string
}

func newBasicUpstream(t *testing.T) (*basicUpstream, string) {
	t.Helper()
	ca := tlstest.NewCA(t, "basic provider CA")
	u := &basicUpstream{pass: basicPassword}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.auths = append(u.auths, r.Header.Values("Authorization"))
		pass := u.pass
		u.mu.Unlock()
		user, pw, ok := r.BasicAuth()
		if !ok || user != basicUser || pw != pass {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api/me":
			_, _ = io.WriteString(w, `{"user":"ann"}`)
		case "/api/echo":
			w.Header().Set("X-Echo-Password", pw)
			w.Header().Set("X-Echo-Authorization", r.Header.Get("Authorization"))
			_, _ = io.WriteString(w, "ok")
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	u.Server.Config.ErrorLog = log.New(io.Discard, "", 0)
	u.Server.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS}}
	u.Server.StartTLS()
	t.Cleanup(u.Server.Close)
	return u, ca.WriteFile(t, t.TempDir(), "ca.pem")
}

func (u *basicUpstream) lastAuth(t *testing.T) []string {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	require.NotEmpty(t, u.auths, "the provider saw no request")
	return u.auths[len(u.auths)-1]
}

// basicProvider configures provider "acme-basic" (auth_mode basic) at the upstream.
func basicProvider(t *testing.T, h *harness, base string, returnURL string) {
	t.Helper()
	body := map[string]any{"display_name": "Acme Basic", "auth_mode": "basic", "api_base_url": base + "/api",
		"health_check_url": base + "/api/me"}
	if returnURL != "" {
		body["return_urls"] = []string{returnURL}
	}
	h.expect(h.do("PUT", "/v1/providers/acme-basic", bootstrapKey, body), 200, "")
}

// TestBasicConnectionsEndToEnd (both dialects): a basic connection is created with
// POST /v1/connections "basic":{"username","password"}; malformed pairs are 400
// invalid_request with the field named and store nothing; the view masks the username and
// never shows the password; the token endpoint returns both as credential_type basic; the
// forwarding proxy sends them to the provider over TLS as the only Authorization (HTTP
// Basic, the caller's own dropped) and drops a response header that echoes the password;
// the health check sends them too: a changed password marks the connection error, the
// right one makes it active again.
func TestBasicConnectionsEndToEnd(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			up, caFile := newBasicUpstream(t)
			h := newHarness(t, d, map[string]string{"AUTHPIPE_OUTBOUND_CA_FILE": caFile})
			basicProvider(t, h, up.URL, "")
			h.expect(h.do("PUT", "/v1/providers/no-base", bootstrapKey, map[string]any{"auth_mode": "basic"}), 400, "invalid_request")
			writer, reader := h.createKey("connections:write"), h.createKey("tokens:read")
			count := func() int64 {
				var n int64
				require.NoError(t, h.app.Store.DB().Model(&store.Connection{}).Count(&n).Error)
				return n
			}
			before := count()

			long := strings.Repeat("p", 8193)
			bad := []struct {
				name  string
				body  any
				field string
			}{
				{"colon in username", map[string]any{"username": "ann:x", "password": basicPassword}, "basic.username"},
				{"no username", map[string]any{"password": basicPassword}, "basic.username"},
				{"control character", map[string]any{"username": "ann\x01", "password": basicPassword}, "basic.username"},
				{"username too long", map[string]any{"username": strings.Repeat("a", 257), "password": basicPassword}, "basic.username"},
				{"no password", map[string]any{"username": basicUser}, "basic.password"},
				{"password too long", map[string]any{"username": basicUser, "password": long}, "basic.password"},
				{"newline in password", map[string]any{"username": basicUser, "password": "a\nb"}, "basic.password"},
				{"empty", map[string]any{}, "basic.username"},
			}
			for _, tc := range bad {
				r := h.expect(h.do("POST", "/v1/connections", writer, map[string]any{
					"provider": "acme-basic", "end_user_id": "u-1", "basic": tc.body}), 400, "invalid_request")
				require.Contains(t, r.Raw, `"field":"`+tc.field+`"`, tc.name)
				require.NotContains(t, r.Raw, basicPassword, tc.name)
			}
			h.expect(h.do("POST", "/v1/connections", writer, `{"provider":"acme-basic","end_user_id":"u-1","basic":"ann:pw"}`), 400, "invalid_request")
			r := h.expect(h.do("POST", "/v1/connections", writer, map[string]any{"provider": "acme-basic", "end_user_id": "u-1",
				"api_key": "sk_wrong_mode_0123456789"}), 400, "invalid_request")
			require.Contains(t, r.Raw, `"field":"api_key"`)
			r = h.expect(h.do("POST", "/v1/connections", writer, map[string]any{"provider": "stripe", "end_user_id": "u-1",
				"basic": map[string]any{"username": basicUser, "password": basicPassword}}), 400, "invalid_request")
			require.Contains(t, r.Raw, `"field":"basic"`)
			require.Equal(t, before, count(), "nothing stored")

			c := h.expect(h.do("POST", "/v1/connections", writer, map[string]any{"provider": "acme-basic", "end_user_id": "u-1",
				"basic": map[string]any{"username": basicUser, "password": basicPassword}}), 201, "")
			id := c.Body["id"].(string)
			require.Equal(t, "basic", c.Body["auth_mode"])
			require.Equal(t, "active", c.Body["status"])
			require.Equal(t, basicUser[:8], c.Body["credential_prefix"], "the username masked, as an API key's prefix")
			require.NotContains(t, c.Raw, basicPassword)
			got := h.expect(h.do("GET", "/v1/connections/"+id, reader, nil), 200, "")
			require.NotContains(t, got.Raw, basicPassword)
			require.NotContains(t, got.Raw, basicUser)

			tok := h.expect(h.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")
			require.Equal(t, "basic", tok.Body["credential_type"])
			require.Equal(t, basicUser, tok.Body["username"])
			require.Equal(t, basicPassword, tok.Body["password"])
			require.NotContains(t, tok.Body, "api_key")
			require.NotContains(t, tok.Body, "access_token")
			require.Equal(t, "no-store", tok.Header.Get("Cache-Control"))

			// Forwarding: HTTP Basic, the only Authorization the provider sees.
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte(basicUser+":"+basicPassword))
			res, body := send(t, h.srv.URL, "GET", "/v1/proxy/"+id+"/echo", bearerHdr(reader, "Authorization", "Basic Y2FsbGVyOnB3"), nil)
			require.Equal(t, http.StatusOK, res.StatusCode, string(body))
			require.Equal(t, []string{want}, up.lastAuth(t))
			require.Empty(t, res.Header.Get("X-Echo-Password"), "a header echoing the password is dropped")
			require.Empty(t, res.Header.Get("X-Echo-Authorization"), "a header echoing the Basic credential is dropped")
			for k, vs := range res.Header {
				for _, v := range vs {
					require.NotContains(t, v, "SENTINEL-basic-pw", k)
				}
			}

			// Health check: the sweep probes health_check_url with the pair.
			sweep := func() {
				t.Helper()
				require.NoError(t, h.app.Store.DB().Model(&store.Connection{}).Where("id = ?", id).
					Update("next_refresh_at", time.Now().Add(-time.Hour).UTC()).Error)
				_, err := h.app.Refresher.Sweep(context.Background())
				require.NoError(t, err)
			}
			status := func() string {
				return h.expect(h.do("GET", "/v1/connections/"+id, reader, nil), 200, "").Body["status"].(string)
			}
			sweep()
			require.Equal(t, []string{want}, up.lastAuth(t), "the health check sent the pair")
			require.Equal(t, "active", status())
			up.mu.Lock()
			up.pass = "changed at the provider"
			up.mu.Unlock()
			sweep()
			require.Equal(t, "error", status(), "a refused pair marks the connection error")
			up.mu.Lock()
			up.pass = basicPassword
			up.mu.Unlock()
			sweep()
			require.Equal(t, "active", status(), "a passing check makes it active again")

			// Disconnect: nothing to revoke at the provider; the token is gone.
			h.expect(h.do("DELETE", "/v1/connections/"+id, writer, nil), 200, "")
			h.expect(h.do("GET", "/v1/connections/"+id+"/token", reader, nil), 410, "disconnected")
			require.NotContains(t, h.logs.String(), "SENTINEL-basic-pw")
			if d == store.SQLite {
				requireNotInDatabase(t, h, "SENTINEL-basic-pw") // a scan of every table (SQLite's catalog)
			}
		})
	}
}

// TestHostedBasicForm (both dialects): a basic provider's connect page is a username and
// password form (labelled, the password a password input) under the same CSP as the API-key
// form; a wrong form token, a foreign origin, a username with a colon or a missing password
// store nothing and leave the session usable; the good POST stores the connection, whose
// token read gives back the pair; an API key posted to a basic session is refused.
func TestHostedBasicForm(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			f := newFlow(t, d, oauthtest.Options{AutoLogin: true})
			basicProvider(t, f.h, "https://basic.example.com", f.ret)
			b := f.browser()
			before := f.connections()

			id, connectURL := f.session(map[string]any{"provider": "acme-basic", "end_user_id": "user-9"})
			res, page := b.get(connectURL)
			require.Equal(t, http.StatusOK, res.StatusCode, page)
			require.Contains(t, res.Header.Get("Content-Security-Policy"), "form-action 'self' "+strings.TrimSuffix(f.app.URL, "/"))
			require.Contains(t, page, `<label for="username">Username</label>`)
			require.Contains(t, page, `<input id="username" name="username" required autofocus`)
			require.Contains(t, page, `<label for="password">Password or API token</label>`)
			require.Contains(t, page, `<input type="password" id="password" name="password" required`)
			require.NotContains(t, page, `name="api_key"`)
			require.NotContains(t, page, "<script")
			token, ok := oauthtest.ConnectFormToken(page)
			require.True(t, ok)

			usable := func() {
				t.Helper()
				cs, err := f.h.app.Store.ConnectSession(context.Background(), id)
				require.NoError(t, err)
				require.Nil(t, cs.UsedAt)
				require.Nil(t, cs.StartedAt)
				require.Equal(t, before, f.connections(), "nothing stored")
			}
			good := url.Values{"form_token": {token}, "username": {basicUser}, "password": {basicPassword}}
			for _, tc := range []struct {
				form   url.Values
				origin string
				status int
			}{
				{good, "https://evil.example", http.StatusForbidden},
				{url.Values{"form_token": {token + "x"}, "username": {basicUser}, "password": {basicPassword}}, f.origin, http.StatusForbidden},
				{url.Values{"form_token": {token}, "username": {"ann:x"}, "password": {basicPassword}}, f.origin, http.StatusBadRequest},
				{url.Values{"form_token": {token}, "username": {basicUser}, "password": {""}}, f.origin, http.StatusBadRequest},
				{url.Values{"form_token": {token}, "api_key": {basicPassword}}, f.origin, http.StatusBadRequest},
				{url.Values{"form_token": {token}}, f.origin, http.StatusBadRequest}, // the sign-in form's POST
			} {
				res, body := b.do(keyPost(connectURL, tc.form, tc.origin))
				require.Equal(t, tc.status, res.StatusCode, body)
				require.NotContains(t, body, basicPassword)
				usable()
			}

			res, body := b.do(keyPost(connectURL, good, f.origin))
			require.Equal(t, http.StatusSeeOther, res.StatusCode, body)
			ret, err := url.Parse(res.Header.Get("Location"))
			require.NoError(t, err)
			require.Equal(t, "connected", ret.Query().Get("status"))
			connID := ret.Query().Get("connection_id")
			r := f.h.expect(f.h.do("GET", "/v1/connections/"+connID+"/token", f.key, nil), 200, "")
			require.Equal(t, "basic", r.Body["credential_type"])
			require.Equal(t, basicUser, r.Body["username"])
			require.Equal(t, basicPassword, r.Body["password"])
			require.Equal(t, before+1, f.connections())

			res, body = b.do(keyPost(connectURL, good, f.origin))
			require.Equal(t, http.StatusBadRequest, res.StatusCode, body)
			require.Contains(t, body, "invalid_state")
			require.NotContains(t, f.h.logs.String(), "SENTINEL-basic-pw")
			for _, bd := range f.bodies {
				require.NotContains(t, bd, "SENTINEL-basic-pw", "the password reached a page")
			}
		})
	}
}

package proxy_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// Origin binding (API.md "Origin binding", DESIGN.md "Where a credential may go"): a
// credential goes only to the origins it was stored for. In each test a local listener
// stands in for a new origin, the provider's URLs are changed directly in the database
// (any writer: a providers:write key, the control plane, a database writer), and the
// listener never receives a request carrying the access token, refresh token, API key or
// client secret in any encoding; the call answers 409 origin_changed and is audited
// credential.binding_refused.

// listener records every request it receives, whole.
type listener struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []string
}

func newListener(t *testing.T) *listener {
	l := &listener{}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dump, _ := httputil.DumpRequest(r, true)
		l.mu.Lock()
		l.reqs = append(l.reqs, string(dump))
		l.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"stolen","token_type":"Bearer","expires_in":3600}`))
	}))
	t.Cleanup(l.Close)
	return l
}

// views are the forms a secret may take in a request: as sent, with Basic credentials
// and base64 blobs decoded, and url-decoded.
func (l *listener) views() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, raw := range l.reqs {
		out = append(out, raw)
		if u, err := url.QueryUnescape(raw); err == nil {
			out = append(out, u)
		}
		for _, word := range strings.FieldsFunc(raw, func(r rune) bool { return strings.ContainsRune(" \r\n:=&,;\"", r) }) {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
				if b, err := enc.DecodeString(word); err == nil {
					out = append(out, string(b))
					if u, err := url.QueryUnescape(string(b)); err == nil {
						out = append(out, u)
					}
				}
			}
		}
	}
	return out
}

// neverGot fails if any request the listener received carries one of the secrets.
func (l *listener) neverGot(t *testing.T, secrets ...string) {
	t.Helper()
	for _, v := range l.views() {
		for _, s := range secrets {
			require.NotEmpty(t, s)
			require.NotContains(t, v, s, "a credential reached the new origin")
		}
	}
}

func (l *listener) hits() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

// repoint changes provider key's URL fields directly in the providers table, as any
// writer could, and waits out the forwarding path's 1 s provider cache.
func repoint(t *testing.T, h *harness, key string, fields map[string]string) {
	t.Helper()
	var row store.Provider
	require.NoError(t, h.app.Store.DB().Where("workspace_id = ? AND key = ?", store.DefaultWorkspaceID, key).Take(&row).Error)
	cfg := map[string]any{}
	require.NoError(t, json.Unmarshal([]byte(row.Config), &cfg))
	for k, v := range fields {
		cfg[k] = v
	}
	doc, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, h.app.Store.DB().Model(&store.Provider{}).Where("id = ?", row.ID).Update("config", string(doc)).Error)
	time.Sleep(1100 * time.Millisecond)
}

// refusals returns the credential.binding_refused events of connection conn (any: "").
func refusals(t *testing.T, h *harness, conn, purpose string) []audit.Event {
	t.Helper()
	var evs []audit.Event
	require.NoError(t, h.app.Store.DB().Table("audit_events").Where("type = ?", audit.BindingRefused).Find(&evs).Error)
	var out []audit.Event
	for _, e := range evs {
		var d map[string]string
		require.NoError(t, json.Unmarshal([]byte(e.Data), &d))
		if (conn == "" || e.ConnectionID == conn) && d["purpose"] == purpose {
			require.Equal(t, "origin_changed", e.ErrorCode)
			require.NotEmpty(t, d["origin"])
			out = append(out, e)
		}
	}
	return out
}

// originFlow is a connect flow against fosite whose provider also has an api_base_url.
func originFlow(t *testing.T, dialect string) *flow {
	f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
	api, err := url.Parse(f.as.APIURL())
	require.NoError(t, err)
	f.h.expect(f.h.do("PUT", "/v1/providers/fosite", bootstrapKey, map[string]any{
		"display_name": "Fosite", "auth_mode": "oauth2", "client_id": f.as.ClientID(), "client_secret": clientSecret,
		"scopes": []string{"read"}, "callback_urls": []string{f.callback}, "return_urls": []string{f.ret},
		"authorization_url": f.as.AuthorizationURL(), "token_url": f.as.TokenURL(), "revocation_url": f.as.RevocationURL(),
		"issuer": f.as.Issuer(), "token_auth_method": "client_secret_basic", "api_base_url": api.Scheme + "://" + api.Host,
	}), 200, "")
	return f
}

// The refresh grant (refresh token + client secret) to a re-pointed token_url: refused.
func TestOriginBindingRefresh(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := originFlow(t, dialect)
			id := f.connect("alice")
			access, refresh := f.storedTokens(id)
			evil := newListener(t)
			repoint(t, f.h, "fosite", map[string]string{"token_url": evil.URL + "/token"})
			f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/refresh", f.key, nil), 409, "origin_changed")
			require.Zero(t, evil.hits(), "nothing is sent")
			evil.neverGot(t, access, refresh, clientSecret)
			require.NotEmpty(t, refusals(t, f.h, id, "refresh"))
		})
	}
}

// Forwarding (the access token) to a re-pointed api_base_url: refused.
func TestOriginBindingForwardOAuth(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := originFlow(t, dialect)
			id := f.connect("alice")
			access, refresh := f.storedTokens(id)
			fwd := f.key
			f.h.do("GET", "/v1/proxy/"+id+"/api", fwd, nil) // bound: goes through (whatever fosite answers)
			evil := newListener(t)
			repoint(t, f.h, "fosite", map[string]string{"api_base_url": evil.URL})
			f.h.expect(f.h.do("GET", "/v1/proxy/"+id+"/x", fwd, nil), 409, "origin_changed")
			require.Zero(t, evil.hits())
			evil.neverGot(t, access, refresh, clientSecret)
			require.Len(t, refusals(t, f.h, id, "forward"), 1)
		})
	}
}

// Revocation (refresh token, access token, client secret) to a re-pointed revocation_url:
// not sent; the credential stays sealed until retention.
func TestOriginBindingRevoke(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := originFlow(t, dialect)
			id := f.connect("alice")
			access, refresh := f.storedTokens(id)
			evil := newListener(t)
			repoint(t, f.h, "fosite", map[string]string{"revocation_url": evil.URL + "/revoke"})
			f.h.expect(f.h.do("DELETE", "/v1/connections/"+id, f.key, nil), 200, "")
			require.Zero(t, evil.hits())
			require.Zero(t, f.as.RevokeCalls())
			evil.neverGot(t, access, refresh, clientSecret)
			require.Len(t, refusals(t, f.h, id, "revoke"), 1)
		})
	}
}

// The code exchange (code, verifier, client secret) to a token_url re-pointed between the
// start of the flow and the callback: refused, nothing stored.
func TestOriginBindingCodeExchange(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := originFlow(t, dialect)
			_, connectURL := f.session(map[string]any{"provider": "fosite", "end_user_id": "alice"})
			b := f.browser()
			cb := f.toCallback(b, connectURL)
			evil := newListener(t)
			repoint(t, f.h, "fosite", map[string]string{"token_url": evil.URL + "/token"})
			res, _ := b.get(cb.String())
			require.Equal(t, http.StatusConflict, res.StatusCode)
			require.Zero(t, evil.hits())
			evil.neverGot(t, clientSecret, cb.Query().Get("code"))
			require.Len(t, refusals(t, f.h, "", "code_exchange"), 1)
			var n int64
			require.NoError(t, f.h.app.Store.DB().Model(&store.Connection{}).Count(&n).Error)
			require.Zero(t, n, "nothing stored")
		})
	}
}

// An API key: forwarding to a re-pointed api_base_url and a health check at a re-pointed
// health_check_url are refused.
func TestOriginBindingAPIKey(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			h := newHarness(t, dialect, nil)
			up := newUpstream(t)
			id := echoProvider(t, h, up.URL+"/base")
			repoint(t, h, "echo", map[string]string{"health_check_url": up.URL + "/base/me"}) // same origin: stays usable
			fwd := h.createKey("tokens:read")
			h.expect(h.do("GET", "/v1/proxy/"+id+"/echo", fwd, nil), 200, "")

			evil := newListener(t)
			repoint(t, h, "echo", map[string]string{"api_base_url": evil.URL, "health_check_url": evil.URL + "/me"})
			h.expect(h.do("GET", "/v1/proxy/"+id+"/x", fwd, nil), 409, "origin_changed")
			require.NoError(t, h.app.Store.DB().Model(&store.Connection{}).Where("id = ?", id).
				Update("next_refresh_at", time.Now().Add(-time.Hour).UTC()).Error)
			_, err := h.app.Refresher.Sweep(context.Background())
			require.NoError(t, err)
			require.Zero(t, evil.hits())
			evil.neverGot(t, upstreamKey)
			require.Len(t, refusals(t, h, id, "forward"), 1)
			require.Len(t, refusals(t, h, id, "health_check"), 1)
		})
	}
}

// A database edit of a stored binding (pointing it at a new origin) does not re-point the
// credential: it no longer opens, for the token endpoint or anything else.
func TestOriginBindingDatabaseEditMakesUnopenable(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			h := newHarness(t, dialect, nil)
			up := newUpstream(t)
			id := echoProvider(t, h, up.URL+"/base")
			reader := h.createKey("tokens:read")
			h.expect(h.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")
			evil := newListener(t)
			repoint(t, h, "echo", map[string]string{"api_base_url": evil.URL})
			require.NoError(t, h.app.Store.DB().Model(&store.Credential{}).Where("connection_id = ?", id).
				Update("access_origins", `["`+evil.URL+`"]`).Error)
			h.app.Store.InvalidateConnections() // a raw edit the cache cannot see
			r := h.do("GET", "/v1/connections/"+id+"/token", reader, nil)
			require.NotEqual(t, http.StatusOK, r.Status, "the credential does not open under another binding")
			r = h.do("GET", "/v1/proxy/"+id+"/x", reader, nil)
			require.NotEqual(t, http.StatusOK, r.Status)
			require.Zero(t, evil.hits())
		})
	}
}

package controlplane_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/controlplane/cptest"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// Sentinel client secrets of the OAuth provider: the right one and a wrong one.
const (
	oauthClientSecret = "SENTINEL-oauth-client-secret-0123456789"
	wrongClientSecret = "SENTINEL-wrong-client-secret-9876543210"
)

// oauthRun is one proxy linked to cptest with a fosite provider "fosite" configured, and
// every code, state, verifier and token the test saw: none may reach the control plane.
type oauthRun struct {
	t      *testing.T
	p      *running
	as     *oauthtest.Server
	key    string
	ret    string
	secret []string
}

// provider (re)configures the fosite provider with clientSecret.
func (o *oauthRun) provider(clientSecret string) {
	o.t.Helper()
	st, body := o.p.do(o.t, "PUT", "/v1/providers/fosite", o.key, map[string]any{
		"display_name": "Fosite", "auth_mode": "oauth2", "client_id": o.as.ClientID(), "client_secret": clientSecret,
		"scopes": []string{"read"}, "callback_urls": []string{o.p.base + "/v1/oauth/callback"}, "return_urls": []string{o.ret},
		"authorization_url": o.as.AuthorizationURL(), "token_url": o.as.TokenURL(), "revocation_url": o.as.RevocationURL(),
		"issuer": o.as.Issuer(), "token_auth_method": "client_secret_basic",
	})
	require.Equal(o.t, 200, st, "%v", body)
}

// connect runs the real flow in a cookie-jar browser that follows no redirect: connect URL
// → fosite's authorization endpoint (auto-login) → the proxy's callback → the return URL.
// sessionPath is POST /v1/connect/sessions or POST /v1/connections/{id}/reconnect.
func (o *oauthRun) connect(sessionPath string, body map[string]any) string {
	t := o.t
	t.Helper()
	st, sess := o.p.do(t, "POST", sessionPath, o.key, body)
	require.Equal(t, 201, st, "%v", sess)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	b := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	hop := func(raw string, want int) *url.URL {
		t.Helper()
		res, err := b.Get(raw)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		require.Equal(t, want, res.StatusCode, raw)
		u, err := url.Parse(res.Header.Get("Location"))
		require.NoError(t, err)
		return u
	}
	// The connect page, then its form, posted from the public URL's origin.
	res, err := oauthtest.StartConnect(b, o.p.base+"/v1/connect/"+sess["id"].(string), o.p.app.Config.PublicURL)
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusFound, res.StatusCode)
	authURL, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(authURL.String(), o.as.AuthorizationURL()))
	cb := hop(authURL.String(), http.StatusSeeOther)
	code, state := cb.Query().Get("code"), cb.Query().Get("state")
	require.NotEmpty(t, code)
	require.GreaterOrEqual(t, len(state), 43)
	o.secret = append(o.secret, code, state)
	ret := hop(cb.String(), http.StatusFound)
	require.Equal(t, "connected", ret.Query().Get("status"), ret.String())
	if v := o.as.LastTokenForm()["code_verifier"]; len(v) == 1 {
		o.secret = append(o.secret, v[0])
	}
	id := ret.Query().Get("connection_id")
	require.True(t, strings.HasPrefix(id, "conn_"), ret.String())
	return id
}

// token reads the connection's access token (min_validity forces a refresh).
func (o *oauthRun) token(id, query string) string {
	o.t.Helper()
	st, body := o.p.do(o.t, "GET", "/v1/connections/"+id+"/token"+query, o.key, nil)
	require.Equal(o.t, 200, st, "%v", body)
	tok := body["access_token"].(string)
	o.secret = append(o.secret, tok)
	return tok
}

// revoke revokes the grant behind an access token at the provider (RFC 7009): fosite then
// refuses the stored refresh token with invalid_grant.
func (o *oauthRun) revoke(accessToken string) {
	o.t.Helper()
	req, err := http.NewRequest("POST", o.as.RevocationURL(), strings.NewReader(url.Values{"token": {accessToken}}.Encode()))
	require.NoError(o.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(o.as.ClientID(), oauthClientSecret)
	res, err := http.DefaultClient.Do(req)
	require.NoError(o.t, err)
	_ = res.Body.Close()
	require.Equal(o.t, 200, res.StatusCode)
}

// connEvents is what cptest received about one connection, in order.
func connEvents(evs []controlplane.Event, id string) []controlplane.Event {
	var out []controlplane.Event
	for _, e := range evs {
		if e.ConnectionID == id {
			out = append(out, e)
		}
	}
	return out
}

func find(evs []controlplane.Event, typ controlplane.EventType, status controlplane.Status, code controlplane.ErrorCode) bool {
	for _, e := range evs {
		if e.Type == typ && e.Status == status && e.ErrorCode == code {
			return true
		}
	}
	return false
}

// A proxy linked to cptest runs OAuth connects through the real flow against fosite,
// refreshes (forced and min_validity), a refresh refused for the client (invalid_client)
// and one refused for the grant (invalid_grant → needs_reauth), a reconnect and
// disconnects. cptest sees each as metadata, and nothing it received carries a sentinel,
// a code, a state, a verifier, a token or anything token-shaped.
func TestEndToEndOAuthMetadataOnly(t *testing.T) {
	cp, err := cptest.NewServer(cpToken)
	require.NoError(t, err)
	defer cp.Close()
	dir := t.TempDir()
	p := startProxy(t, map[string]string{
		"AUTHPIPE_LISTEN_ADDR":           "127.0.0.1:0",
		"AUTHPIPE_DATABASE_URL":          storetest.URL(t, store.SQLite),
		"AUTHPIPE_KEK_URI":               "local://" + filepath.Join(dir, "kek.key"),
		"AUTHPIPE_CLIENT_SECRET_KEK_URI": "local://" + filepath.Join(dir, "cs-kek.key"),
		"AUTHPIPE_BOOTSTRAP_API_KEY":     e2eBootstrapKey,
		"AUTHPIPE_CONTROL_PLANE_URL":     cp.URL,
		"AUTHPIPE_CONTROL_PLANE_TOKEN":   cpToken,
		// The forced refreshes below follow each other at once, well under a millisecond apart
		// on a fast machine: no throttle at all (1ms was flaky).
		"AUTHPIPE_FORCED_REFRESH_INTERVAL": "1ns",
	})
	st, body := p.do(t, "POST", "/v1/api-keys", e2eBootstrapKey, map[string]any{"name": "e2e-oauth",
		"scopes": []string{"connections:write", "tokens:read", "providers:write"}})
	require.Equal(t, 201, st, "%v", body)
	o := &oauthRun{t: t, p: p, key: body["key"].(string), ret: "http://127.0.0.1:9/integrations/done"}
	o.as = oauthtest.New(t, oauthtest.Options{AutoLogin: true, ClientSecret: oauthClientSecret,
		RedirectURIs: []string{p.base + "/v1/oauth/callback"}})
	o.provider(oauthClientSecret)

	// Two connections through the real flow.
	a := o.connect("/v1/connect/sessions", map[string]any{"provider": "fosite", "end_user_id": "user-a"})
	b := o.connect("/v1/connect/sessions", map[string]any{"provider": "fosite", "end_user_id": "user-b"})
	first := o.token(a, "")
	require.True(t, o.as.Active(t.Context(), first))

	// Refreshes: min_validity beyond the one-hour token, then forced.
	second := o.token(a, "?min_validity=3700")
	require.NotEqual(t, first, second, "min_validity forced a refresh")
	st, body = p.do(t, "POST", "/v1/connections/"+a+"/refresh", o.key, nil)
	require.Equal(t, 200, st, "%v", body)
	require.NotEqual(t, second, o.token(a, ""), "POST /refresh refreshed")
	st, body = p.do(t, "POST", "/v1/connections/"+b+"/refresh", o.key, nil)
	require.Equal(t, 200, st, "%v", body)

	// b: the grant is revoked at the provider; the next refresh gets invalid_grant and b
	// needs re-authorization.
	o.revoke(o.token(b, ""))
	st, body = p.do(t, "POST", "/v1/connections/"+b+"/refresh", o.key, nil)
	require.NotEqual(t, 200, st, "%v", body)
	st, body = p.do(t, "GET", "/v1/connections/"+b, o.key, nil)
	require.Equal(t, 200, st)
	require.Equal(t, "needs_reauth", body["status"])

	// a: the provider refuses the client (wrong secret): a transient failure, a stays active.
	o.provider(wrongClientSecret)
	st, body = p.do(t, "POST", "/v1/connections/"+a+"/refresh", o.key, nil)
	require.Equal(t, 503, st, "%v", body)
	o.provider(oauthClientSecret)

	// b is reconnected through the flow, then both are disconnected.
	require.Equal(t, b, o.connect("/v1/connections/"+b+"/reconnect", map[string]any{}))
	o.token(b, "")
	for _, id := range []string{a, b} {
		st, body = p.do(t, "DELETE", "/v1/connections/"+id, o.key, nil)
		require.Equal(t, 200, st, "%v", body)
	}

	// cptest saw every step, as metadata.
	waitN(t, cp, controlplane.EventConnectionDisconnected, 2)
	waitN(t, cp, controlplane.EventHeartbeat, 1)
	evs := waitN(t, cp, controlplane.EventCounts, 1)
	for _, typ := range []controlplane.EventType{controlplane.EventConnectionCreated, controlplane.EventConnectionRefreshed,
		controlplane.EventConnectionRefreshFailed, controlplane.EventConnectionStatusChanged, controlplane.EventConnectionDisconnected,
		controlplane.EventHeartbeat, controlplane.EventCounts} {
		require.Positive(t, countType(evs, typ), "cptest saw %s", typ)
	}
	ea, eb := connEvents(evs, a), connEvents(evs, b)
	for _, e := range append(append([]controlplane.Event(nil), ea...), eb...) {
		require.Equal(t, store.DefaultWorkspaceID, e.WorkspaceID)
		require.Equal(t, "fosite", e.Provider)
	}
	require.Equal(t, controlplane.EventConnectionCreated, ea[0].Type)
	require.Equal(t, controlplane.StatusActive, ea[0].Status)
	require.Equal(t, 2, countType(ea, controlplane.EventConnectionRefreshed), "min_validity and POST /refresh")
	require.True(t, find(ea, controlplane.EventConnectionRefreshFailed, controlplane.StatusActive, controlplane.ErrorInvalidClient))
	require.Zero(t, countType(ea, controlplane.EventConnectionStatusChanged), "a refused client is transient: a stays active")
	require.Equal(t, controlplane.EventConnectionDisconnected, ea[len(ea)-1].Type)

	require.Equal(t, controlplane.EventConnectionCreated, eb[0].Type)
	require.Equal(t, 1, countType(eb, controlplane.EventConnectionCreated), "a reconnect is not a second creation")
	require.Equal(t, 1, countType(eb, controlplane.EventConnectionRefreshed))
	require.True(t, find(eb, controlplane.EventConnectionRefreshFailed, controlplane.StatusNeedsReauth, controlplane.ErrorInvalidGrant))
	require.True(t, find(eb, controlplane.EventConnectionStatusChanged, controlplane.StatusNeedsReauth, controlplane.ErrorInvalidGrant))
	require.True(t, find(eb, controlplane.EventConnectionStatusChanged, controlplane.StatusActive, ""), "reconnected")
	require.Equal(t, controlplane.EventConnectionDisconnected, eb[len(eb)-1].Type)

	// Everything cptest received: no sentinel, code, state, verifier or token.
	require.GreaterOrEqual(t, len(o.secret), 3*3+4, "codes, states, verifiers and tokens were captured")
	reqs := cp.Requests()
	require.NotEmpty(t, reqs)
	for i, r := range reqs {
		var hdr strings.Builder
		for k, vs := range r.Header {
			if k == "Authorization" {
				require.Equal(t, []string{"Bearer " + cpToken}, vs)
				continue
			}
			hdr.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
		all := r.Method + " " + r.Path + "?" + r.Query + "\n" + hdr.String() + string(r.Body)
		for _, s := range []string{sentinelPrefix, oauthClientSecret, wrongClientSecret, e2eBootstrapKey, o.key} {
			require.NotContains(t, all, s, "request %d", i)
		}
		for _, s := range o.secret {
			require.NotEmpty(t, s)
			require.NotContains(t, all, s, "request %d carries a code, state, verifier or token", i)
		}
		for name, re := range tokenShaped {
			require.False(t, re.MatchString(all), "request %d carries something %s-shaped: %q", i, name, re.FindString(all))
		}
	}
	t.Logf("scanned %d requests, %d events (%d about a, %d about b)", len(reqs), len(evs), len(ea), len(eb))
}

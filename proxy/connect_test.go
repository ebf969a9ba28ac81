package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// clientSecret is the OAuth client secret of the test provider, and a sentinel: it must
// never appear in a log line or a response body.
const clientSecret = "SENTINEL-client-secret-0123456789"

// testClock is the harness's injected clock: real time plus an offset a test can move.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// newClockHarness is newHarness with an injected clock.
func newClockHarness(t *testing.T, dialect string, env map[string]string, clock *testClock) *harness {
	t.Helper()
	dir := t.TempDir()
	vars := map[string]string{
		"AUTHPIPE_DATABASE_URL":          storetest.URL(t, dialect),
		"AUTHPIPE_KEK_URI":               "local://" + filepath.Join(dir, "kek.key"),
		"AUTHPIPE_CLIENT_SECRET_KEK_URI": "local://" + filepath.Join(dir, "cs-kek.key"),
		"AUTHPIPE_BOOTSTRAP_API_KEY":     bootstrapKey,
		"AUTHPIPE_LOG_LEVEL":             "debug",
	}
	for k, v := range env {
		vars[k] = v
	}
	withListenURL(t, vars)
	srv := httptest.NewUnstartedServer(nil)
	if vars["AUTHPIPE_PUBLIC_URL"] == "self" { // the server's own address: what a real browser reaches
		vars["AUTHPIPE_PUBLIC_URL"] = "http://" + srv.Listener.Addr().String()
	}
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	logs := &syncBuffer{}
	a, err := app.New(context.Background(), cfg, app.WithLogOutput(logs), app.WithClock(clock.now))
	require.NoError(t, err)
	require.NoError(t, a.Bootstrap(context.Background()))
	a.Server.SetReady(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Audit.Run(ctx); close(done) }()
	srv.Config.Handler = a.Server.Handler()
	srv.Start()
	h := &harness{t: t, app: a, logs: logs, srv: srv}
	t.Cleanup(func() {
		h.srv.Close()
		a.Audit.Stop(context.Background())
		cancel()
		<-done
		a.Close()
		h.noAnomaly()
	})
	return h
}

// flow is one test's proxy, fosite provider and application return page.
type flow struct {
	t        *testing.T
	h        *harness
	as       *oauthtest.Server
	clock    *testClock
	app      *httptest.Server
	appHits  atomic.Int64
	callback string
	ret      string
	key      string // connections:write + tokens:read
	origin   string // the public URL's origin, which the connect page's POST comes from

	mu      sync.Mutex
	secrets []string // codes, states and verifiers seen: none may reach a log or a body
	bodies  []string
}

func newFlow(t *testing.T, dialect string, opts oauthtest.Options) *flow {
	t.Helper()
	return newFlowEnv(t, dialect, opts, nil)
}

// newFlowEnv is newFlow with more settings; AUTHPIPE_PUBLIC_URL "self" is the harness's
// own address (what a real browser must reach).
func newFlowEnv(t *testing.T, dialect string, opts oauthtest.Options, env map[string]string) *flow {
	t.Helper()
	f := &flow{t: t, clock: &testClock{}, origin: "http://127.0.0.1:8080"}
	f.h = newClockHarness(t, dialect, env, f.clock)
	if env["AUTHPIPE_PUBLIC_URL"] == "self" {
		f.origin = f.h.srv.URL
	}
	f.callback = f.h.srv.URL + "/v1/oauth/callback"
	f.app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.appHits.Add(1)
		_, _ = io.WriteString(w, `<!doctype html><html><body><p id="done">integration page</p></body></html>`)
	}))
	t.Cleanup(f.app.Close)
	f.ret = f.app.URL + "/integrations/done"
	opts.ClientSecret = clientSecret
	opts.RedirectURIs = []string{f.callback}
	f.as = oauthtest.New(t, opts)
	f.h.expect(f.h.do("PUT", "/v1/providers/fosite", bootstrapKey, map[string]any{
		"display_name": "Fosite", "auth_mode": "oauth2", "client_id": f.as.ClientID(), "client_secret": clientSecret,
		"scopes": []string{"read"}, "callback_urls": []string{f.callback}, "return_urls": []string{f.ret},
		"authorization_url": f.as.AuthorizationURL(), "token_url": f.as.TokenURL(), "revocation_url": f.as.RevocationURL(),
		"issuer": f.as.Issuer(), "token_auth_method": "client_secret_basic",
	}), 200, "")
	f.key = f.h.createKey("connections:write", "tokens:read")
	return f
}

// browser is a cookie jar that does not follow redirects: each hop is asserted.
type browser struct {
	f *flow
	c *http.Client
}

func (f *flow) browser() *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(f.t, err)
	return &browser{f: f, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) get(raw string) (*http.Response, string) {
	b.f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, raw, nil)
	require.NoError(b.f.t, err)
	return b.do(req)
}

// start reads the connect page and posts its form from the public URL's origin: the
// response is the flow's 302 to the provider.
func (b *browser) start(connectURL string) *http.Response {
	b.f.t.Helper()
	res, page := b.get(connectURL)
	require.Equal(b.f.t, http.StatusOK, res.StatusCode, page)
	require.Empty(b.f.t, res.Header.Values("Set-Cookie"), "the page sets no cookie")
	token, ok := oauthtest.ConnectFormToken(page)
	require.True(b.f.t, ok, page)
	res, _ = b.do(oauthtest.ConnectPost(connectURL, token, b.f.origin))
	return res
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.f.t.Helper()
	res, err := b.c.Do(req)
	require.NoError(b.f.t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(b.f.t, err)
	b.f.mu.Lock()
	b.f.bodies = append(b.f.bodies, string(body))
	b.f.mu.Unlock()
	return res, string(body)
}

func location(t *testing.T, res *http.Response) *url.URL {
	t.Helper()
	require.Equal(t, http.StatusFound, res.StatusCode)
	u, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	return u
}

// session creates a connect session and returns its id and the connect URL on the harness.
func (f *flow) session(body map[string]any) (string, string) {
	f.t.Helper()
	if body == nil {
		body = map[string]any{"provider": "fosite", "end_user_id": "user-42"}
	}
	r := f.h.expect(f.h.do("POST", "/v1/connect/sessions", f.key, body), 201, "")
	id := r.Body["id"].(string)
	require.True(f.t, strings.HasPrefix(id, "cs_"))
	connectURL := r.Body["connect_url"].(string)
	require.Equal(f.t, f.origin+"/v1/connect/"+id, connectURL, "built from AUTHPIPE_PUBLIC_URL")
	exp, err := time.Parse(time.RFC3339, r.Body["expires_at"].(string))
	require.NoError(f.t, err)
	require.WithinDuration(f.t, f.clock.now().Add(10*time.Minute), exp, 5*time.Second)
	return id, f.h.srv.URL + "/v1/connect/" + id
}

// toCallback runs a browser from the connect URL through the provider's authorization
// endpoint and returns the callback URL the provider redirected to (not yet followed).
func (f *flow) toCallback(b *browser, connectURL string) *url.URL {
	f.t.Helper()
	res := b.start(connectURL)
	authURL := location(f.t, res)
	q := authURL.Query()
	require.Equal(f.t, f.as.AuthorizationURL(), authURL.Scheme+"://"+authURL.Host+authURL.Path)
	require.Equal(f.t, "code", q.Get("response_type"))
	require.Equal(f.t, f.as.ClientID(), q.Get("client_id"))
	require.Equal(f.t, f.callback, q.Get("redirect_uri"))
	require.Equal(f.t, "S256", q.Get("code_challenge_method"))
	require.Len(f.t, q.Get("code_challenge"), 43)
	require.GreaterOrEqual(f.t, len(q.Get("state")), 43, "≥ 256 bits")
	for _, c := range q.Get("state") {
		require.True(f.t, c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9', "base64url")
	}
	require.NotEmpty(f.t, q.Get("scope"))
	cookie := strings.Join(res.Header.Values("Set-Cookie"), "\n")
	require.Contains(f.t, cookie, "authpipe_flow=")
	require.Contains(f.t, cookie, "HttpOnly")
	require.Contains(f.t, cookie, "SameSite=Lax")
	require.Contains(f.t, cookie, "Path=/")

	res, _ = b.get(authURL.String())
	require.Equal(f.t, http.StatusSeeOther, res.StatusCode, "fosite redirects with 303")
	cb, err := url.Parse(res.Header.Get("Location"))
	require.NoError(f.t, err)
	require.Equal(f.t, f.callback, cb.Scheme+"://"+cb.Host+cb.Path)
	f.mu.Lock()
	f.secrets = append(f.secrets, cb.Query().Get("code"), cb.Query().Get("state"))
	f.mu.Unlock()
	return cb
}

// rejected asserts a 400 problem with code, and no Set-Cookie.
func (f *flow) rejected(res *http.Response, body, code string) {
	f.t.Helper()
	require.Equal(f.t, http.StatusBadRequest, res.StatusCode, body)
	require.Contains(f.t, body, `"code":"`+code+`"`)
	require.Empty(f.t, res.Header.Values("Set-Cookie"), "a rejected callback sets no cookie")
}

func (f *flow) connections() int {
	f.t.Helper()
	r := f.h.expect(f.h.do("GET", "/v1/connections", f.key, nil), 200, "")
	return len(r.Body["connections"].([]any))
}

// connected follows the callback and returns the connection id from the return URL.
func (f *flow) connected(b *browser, cb *url.URL) string {
	f.t.Helper()
	res, body := b.get(cb.String())
	ret := location(f.t, res)
	require.Equal(f.t, f.ret, ret.Scheme+"://"+ret.Host+ret.Path, body)
	require.Equal(f.t, "connected", ret.Query().Get("status"))
	id := ret.Query().Get("connection_id")
	require.True(f.t, strings.HasPrefix(id, "conn_"), ret.String())
	res, _ = b.get(ret.String())
	require.Equal(f.t, http.StatusOK, res.StatusCode)
	f.mu.Lock()
	if v := f.as.LastTokenForm()["code_verifier"]; len(v) == 1 {
		f.secrets = append(f.secrets, v[0])
	}
	f.mu.Unlock()
	return id
}

func (f *flow) token(id string) string {
	f.t.Helper()
	r := f.h.expect(f.h.do("GET", "/v1/connections/"+id+"/token", f.key, nil), 200, "")
	require.Equal(f.t, "oauth2", r.Body["credential_type"])
	require.Equal(f.t, "Bearer", r.Body["token_type"])
	require.Equal(f.t, []any{"read"}, r.Body["scopes"])
	require.NotEmpty(f.t, r.Body["expires_at"])
	return r.Body["access_token"].(string)
}

// apiCall calls the provider's protected resource with token.
func (f *flow) apiCall(token string) int {
	req, _ := http.NewRequest("GET", f.as.APIURL(), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	res.Body.Close()
	return res.StatusCode
}

// noLeaks scans the logs and every response body for the sentinels.
func (f *flow) noLeaks() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	sentinels := append([]string{clientSecret, bootstrapKey}, f.secrets...)
	logs := f.h.logs.String()
	f.h.mu.Lock()
	bodies := append(append([]string(nil), f.h.bodies...), f.bodies...)
	f.h.mu.Unlock()
	require.NotEmpty(f.t, logs)
	for _, s := range sentinels {
		if s == "" {
			continue
		}
		require.NotContains(f.t, logs, s, "a secret reached the logs")
		for _, b := range bodies {
			require.NotContains(f.t, b, s, "a secret reached a response body")
		}
	}
}

func TestConnectFlowAgainstFosite(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
			f.as.SetIss(oauthtest.IssCorrect)
			_, connectURL := f.session(nil)
			b := f.browser()
			cb := f.toCallback(b, connectURL)
			require.Equal(t, f.as.Issuer(), cb.Query().Get("iss"))
			id := f.connected(b, cb)
			require.EqualValues(t, 1, f.appHits.Load(), "the browser landed on the return URL")
			require.EqualValues(t, 1, f.as.TokenCalls())

			tok := f.token(id)
			require.True(t, f.as.Active(context.Background(), tok), "fosite accepts the stored token")
			require.Equal(t, http.StatusOK, f.apiCall(tok))

			r := f.h.expect(f.h.do("GET", "/v1/connections/"+id, f.key, nil), 200, "")
			require.Equal(t, "oauth2", r.Body["auth_mode"])
			require.Equal(t, "active", r.Body["status"])
			require.Equal(t, "user-42", r.Body["end_user_id"])
			require.Equal(t, "fosite", r.Body["provider"])
			r = f.h.expect(f.h.do("GET", "/v1/audit", bootstrapKey, nil), 200, "")
			var created int
			for _, e := range r.Body["events"].([]any) {
				ev := e.(map[string]any)
				if ev["type"] == "connection.created" && ev["connection_id"] == id {
					created++
				}
			}
			require.Equal(t, 1, created)

			// Replay: the same callback again is refused and changes nothing.
			res, body := b.get(cb.String())
			f.rejected(res, body, "invalid_state")
			require.Equal(t, 1, f.connections())
			require.EqualValues(t, 1, f.as.TokenCalls(), "a replayed state never reaches the token endpoint")

			// The stored ciphertext is bound: no plaintext token in the database.
			var cred store.Credential
			require.NoError(t, f.h.app.Store.DB().Where("connection_id = ?", id).Take(&cred).Error)
			require.NotContains(t, string(cred.AccessToken), tok)
			require.NotEmpty(t, cred.RefreshToken)
			var cs store.ConnectSession
			require.NoError(t, f.h.app.Store.DB().Where("used_at IS NOT NULL").Take(&cs).Error)
			require.NotContains(t, string(cs.StateHash), cb.Query().Get("state"), "only the state's hash is stored")
			require.Len(t, cs.StateHash, 32)
			f.noLeaks()
		})
	}
}

func TestConnectRejectedCallbacks(t *testing.T) {
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	b := f.browser()

	t.Run("missing state", func(t *testing.T) {
		res, body := b.get(f.callback + "?code=abc")
		f.rejected(res, body, "invalid_state")
	})
	t.Run("forged state", func(t *testing.T) {
		_, connectURL := f.session(nil)
		cb := f.toCallback(b, connectURL)
		q := cb.Query()
		q.Set("state", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		forged := *cb
		forged.RawQuery = q.Encode()
		res, body := b.get(forged.String())
		f.rejected(res, body, "invalid_state")
		for _, bad := range []string{"", "short", cb.Query().Get("state") + "x"} {
			q.Set("state", bad)
			forged.RawQuery = q.Encode()
			res, body = b.get(forged.String())
			f.rejected(res, body, "invalid_state")
		}
		q = cb.Query()
		q.Add("state", q.Get("state"))
		forged.RawQuery = q.Encode()
		res, body = b.get(forged.String())
		f.rejected(res, body, "invalid_state")
	})
	t.Run("other browser", func(t *testing.T) {
		_, connectURL := f.session(nil)
		cb := f.toCallback(b, connectURL)
		// A browser without the cookie.
		res, body := f.browser().get(cb.String())
		f.rejected(res, body, "invalid_state")
		// A browser with a flow cookie of its own (from its own session).
		other := f.browser()
		_, otherURL := f.session(nil)
		_ = f.toCallback(other, otherURL)
		res, body = other.get(cb.String())
		f.rejected(res, body, "invalid_state")
		require.Equal(t, 0, f.connections())
		require.Zero(t, f.as.TokenCalls())
		// Nothing was consumed: the browser that started the flow still completes it.
		f.connected(b, cb)
		require.Equal(t, 1, f.connections())
	})
	t.Run("expired state", func(t *testing.T) {
		_, connectURL := f.session(nil)
		cb := f.toCallback(b, connectURL)
		before, calls := f.connections(), f.as.TokenCalls()
		f.clock.advance(10*time.Minute + time.Second)
		defer f.clock.advance(-(10*time.Minute + time.Second))
		res, body := b.get(cb.String())
		f.rejected(res, body, "invalid_state")
		require.Equal(t, before, f.connections())
		require.Equal(t, calls, f.as.TokenCalls())
	})
	t.Run("connect link used twice or expired", func(t *testing.T) {
		_, connectURL := f.session(nil)
		res := b.start(connectURL)
		require.Equal(t, http.StatusFound, res.StatusCode)
		res, body := b.get(connectURL)
		require.Equal(t, http.StatusBadRequest, res.StatusCode, body)
		require.Contains(t, body, `"invalid_state"`)
		_, late := f.session(nil)
		f.clock.advance(11 * time.Minute)
		defer f.clock.advance(-11 * time.Minute)
		res, body = b.get(late)
		require.Equal(t, http.StatusBadRequest, res.StatusCode, body)
		res, _ = b.get(f.h.srv.URL + "/v1/connect/cs_doesnotexist")
		require.Equal(t, http.StatusNotFound, res.StatusCode)
	})
	f.noLeaks()
}

func TestConnectIssuerMismatch(t *testing.T) {
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	f.as.SetIss(oauthtest.IssWrong)
	b := f.browser()
	_, connectURL := f.session(nil)
	cb := f.toCallback(b, connectURL)
	require.Equal(t, oauthtest.WrongIssuer, cb.Query().Get("iss"))
	res, body := b.get(cb.String())
	f.rejected(res, body, "issuer_mismatch")
	require.Zero(t, f.as.TokenCalls(), "the code was never sent to a token endpoint")
	require.Equal(t, 0, f.connections())

	// An iss that differs only by a trailing slash is a mismatch too.
	q := cb.Query()
	q.Set("iss", f.as.Issuer()+"/")
	cb.RawQuery = q.Encode()
	res, body = b.get(cb.String())
	f.rejected(res, body, "issuer_mismatch")
	require.Zero(t, f.as.TokenCalls())
	f.noLeaks()
}

func TestConnectTokenEndpointRedirectNotFollowed(t *testing.T) {
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	f.as.SetTokenRedirect(true)
	b := f.browser()
	_, connectURL := f.session(nil)
	cb := f.toCallback(b, connectURL)
	res, _ := b.get(cb.String())
	ret := location(t, res)
	require.Equal(t, f.ret, ret.Scheme+"://"+ret.Host+ret.Path)
	require.Equal(t, "error", ret.Query().Get("status"))
	require.Equal(t, "provider_error", ret.Query().Get("error"))
	require.Empty(t, ret.Query().Get("connection_id"))
	require.EqualValues(t, 1, f.as.TokenCalls())
	require.Zero(t, f.as.RedirectHits(), "the redirect target was never hit")
	require.Equal(t, 0, f.connections())
	f.noLeaks()
}

func TestConnectProviderError(t *testing.T) {
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	b := f.browser()
	for provided, want := range map[string]string{"access_denied": "access_denied", "<b>evil</b> text": "provider_error"} {
		_, connectURL := f.session(nil)
		res := b.start(connectURL)
		state := location(t, res).Query().Get("state")
		res, body := b.get(f.callback + "?" + url.Values{"state": {state}, "error": {provided},
			"error_description": {"SENTINEL provider text"}}.Encode())
		ret := location(t, res)
		require.Equal(t, "error", ret.Query().Get("status"), body)
		require.Equal(t, want, ret.Query().Get("error"))
		require.NotContains(t, ret.String(), "SENTINEL")
	}
	require.Zero(t, f.as.TokenCalls())
	require.Equal(t, 0, f.connections())
	require.NotContains(t, f.h.logs.String(), "SENTINEL provider text")

	// Without a return URL the browser gets a small page.
	f.h.expect(f.h.do("PUT", "/v1/providers/noreturn", bootstrapKey, map[string]any{
		"display_name": "Fosite", "client_id": f.as.ClientID(), "client_secret": clientSecret,
		"callback_urls": []string{f.callback}, "authorization_url": f.as.AuthorizationURL(), "token_url": f.as.TokenURL(),
	}), 200, "")
	_, connectURL := f.session(map[string]any{"provider": "noreturn", "end_user_id": "u"})
	res := b.start(connectURL)
	state := location(t, res).Query().Get("state")
	res, body := b.get(f.callback + "?" + url.Values{"state": {state}, "error": {"access_denied"}}.Encode())
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, res.Header.Get("Content-Type"), "text/html")
	require.Contains(t, body, "access_denied")
}

func TestConnectAllowlists(t *testing.T) {
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	for name, tc := range map[string]struct {
		field, value, code string
	}{
		"callback prefix":      {"callback_url", f.callback + "x", "invalid_callback_url"},
		"callback dot segment": {"callback_url", f.h.srv.URL + "/v1/oauth/../oauth/callback", "invalid_callback_url"},
		"callback other host":  {"callback_url", "https://evil.example/v1/oauth/callback", "invalid_callback_url"},
		"callback userinfo":    {"callback_url", strings.Replace(f.callback, "http://", "http://evil@", 1), "invalid_callback_url"},
		"return query added":   {"return_url", f.ret + "?next=https://evil.example", "invalid_return_url"},
		"return fragment":      {"return_url", f.ret + "#x", "invalid_return_url"},
		"return case":          {"return_url", strings.ToUpper(f.ret[:4]) + f.ret[4:], "invalid_return_url"},
		"return backslash":     {"return_url", f.app.URL + "\\@evil.example/integrations/done", "invalid_return_url"},
	} {
		t.Run(name, func(t *testing.T) {
			f.h.expect(f.h.do("POST", "/v1/connect/sessions", f.key, map[string]any{"provider": "fosite",
				"end_user_id": "u", tc.field: tc.value}), 400, tc.code)
		})
	}
	// Exact entries are accepted.
	f.h.expect(f.h.do("POST", "/v1/connect/sessions", f.key, map[string]any{"provider": "fosite",
		"end_user_id": "u", "callback_url": f.callback, "return_url": f.ret}), 201, "")
	// Scope and provider checks.
	f.h.expect(f.h.do("POST", "/v1/connect/sessions", f.key, map[string]any{"provider": "nope", "end_user_id": "u"}), 400, "invalid_request")
	f.h.expect(f.h.do("POST", "/v1/connect/sessions", f.key, map[string]any{"provider": "fosite", "end_user_id": "u",
		"scopes": []string{"a b"}}), 400, "invalid_request")
	readOnly := f.h.createKey("tokens:read")
	f.h.expect(f.h.do("POST", "/v1/connect/sessions", readOnly, map[string]any{"provider": "fosite", "end_user_id": "u"}), 403, "forbidden")
	f.h.expect(f.h.do("POST", "/v1/connect/sessions", "", map[string]any{"provider": "fosite", "end_user_id": "u"}), 401, "unauthorized")
}

func TestReconnectKeepsTheConnectionID(t *testing.T) {
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	b := f.browser()
	_, connectURL := f.session(nil)
	id := f.connected(b, f.toCallback(b, connectURL))
	first := f.token(id)

	r := f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/reconnect", f.key, nil), 201, "")
	sess := r.Body["id"].(string)
	require.True(t, strings.HasPrefix(sess, "cs_"))
	again := f.connected(b, f.toCallback(b, f.h.srv.URL+"/v1/connect/"+sess))
	require.Equal(t, id, again, "reconnect restores the same connection id")
	second := f.token(id)
	require.NotEqual(t, first, second)
	require.True(t, f.as.Active(context.Background(), second))
	require.Equal(t, 1, f.connections())
	r = f.h.expect(f.h.do("GET", "/v1/connections/"+id, f.key, nil), 200, "")
	require.Equal(t, "user-42", r.Body["end_user_id"])

	r = f.h.expect(f.h.do("GET", "/v1/audit", bootstrapKey, nil), 200, "")
	types := []string{}
	for _, e := range r.Body["events"].([]any) {
		if ev := e.(map[string]any); ev["connection_id"] == id {
			types = append(types, ev["type"].(string))
		}
	}
	require.Contains(t, types, "connection.reconnected")

	f.h.expect(f.h.do("POST", "/v1/connections/conn_unknown/reconnect", f.key, nil), 404, "not_found")
	ak := f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "stripe", "end_user_id": "u",
		"api_key": "sk_test_abcdefgh"}), 201, "")
	f.h.expect(f.h.do("POST", "/v1/connections/"+ak.Body["id"].(string)+"/reconnect", f.key, nil), 400, "invalid_request")
	f.noLeaks()
}

func TestFlowCookieOnHTTPSPublicURL(t *testing.T) {
	h := newClockHarness(t, store.SQLite, map[string]string{"AUTHPIPE_PUBLIC_URL": "https://proxy.example.com"}, &testClock{})
	h.expect(h.do("PUT", "/v1/providers/gh", bootstrapKey, map[string]any{"template": "github", "client_id": "Iv1.x",
		"client_secret": clientSecret}), 200, "")
	r := h.expect(h.do("POST", "/v1/connect/sessions", bootstrapKey, map[string]any{"provider": "gh", "end_user_id": "u"}), 201, "")
	require.True(t, strings.HasPrefix(r.Body["connect_url"].(string), "https://proxy.example.com/v1/connect/cs_"))
	res, err := oauthtest.StartConnect(&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		h.srv.URL+"/v1/connect/"+r.Body["id"].(string), "https://proxy.example.com")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusFound, res.StatusCode)
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "github.com", loc.Host)
	require.Equal(t, "https://proxy.example.com/v1/oauth/callback", loc.Query().Get("redirect_uri"))
	cookies := res.Cookies()
	require.Len(t, cookies, 1)
	c := cookies[0]
	require.Equal(t, "__Host-authpipe_flow", c.Name)
	require.True(t, c.Secure)
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteLaxMode, c.SameSite)
	require.Equal(t, "/", c.Path)
	require.Empty(t, c.Domain, "__Host- cookies have no Domain")
	require.Len(t, c.Value, 43)
}

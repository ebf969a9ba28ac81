package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/proxy"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// upstreamKey is the stored credential the proxy injects: a sentinel that must never come
// back to the caller.
const upstreamKey = "sk_SENTINELupstreamKEY0123456789"

// seen is one request as the upstream received it.
type seen struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// upstream is a provider API: it records requests and answers by path.
type upstream struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []seen
	flaky atomic.Int32 // answer 503 this many more times on /base/flaky
	other *httptest.Server
	hits  atomic.Int32
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.other = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a cross-origin redirect was followed to %s", r.URL.Path)
	}))
	t.Cleanup(u.other.Close)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		u.mu.Unlock()
		switch r.URL.Path {
		case "/base/echo":
			w.Header().Set("Set-Cookie", "provider_session=abc; HttpOnly")
			w.Header().Set("Access-Control-Allow-Origin", "*")
			w.Header().Set("Alt-Svc", `h3=":443"`)
			w.Header().Set("Clear-Site-Data", `"*"`)
			w.Header().Set("X-Echo-Key", r.Header.Get("X-Upstream-Key")) // a careless provider
			w.Header().Set("X-Provider", "yes")
			w.Header().Set("Cache-Control", "public, max-age=3600")
			w.Header().Set("Connection", "X-Hop")
			w.Header().Set("X-Hop", "dropped")
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.EscapedPath(), "bytes": len(body)})
		case "/base/flaky":
			if u.flaky.Add(-1) >= 0 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("recovered"))
		case "/base/slow-retry":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/base/redirect-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/security-credentials/", http.StatusTemporaryRedirect)
		case "/base/redirect-other":
			http.Redirect(w, r, u.other.URL+"/steal", http.StatusTemporaryRedirect)
		case "/base/redirect-same":
			http.Redirect(w, r, "/base/echo", http.StatusTemporaryRedirect)
		case "/base/redirect-tenant": // same host, another tenant's path
			http.Redirect(w, r, "/tenant-b/steal", http.StatusTemporaryRedirect)
		case "/base/redirect-prefix":
			http.Redirect(w, r, "/basement/steal", http.StatusFound)
		case "/base/redirect-encoded":
			http.Redirect(w, r, "/base/%2e%2e/tenant-b/steal", http.StatusTemporaryRedirect)
		case "/base/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; i < 3; i++ {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
			}
		case "/base/oauth":
			if r.Header.Get("Authorization") != "Bearer at_NEW_token" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			_, _ = w.Write(body)
		case "/base/unauthorized":
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(u.Server.Close)
	return u
}

func (u *upstream) last(t *testing.T) seen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	require.NotEmpty(t, u.reqs, "the upstream saw no request")
	return u.reqs[len(u.reqs)-1]
}

// echoProvider configures provider "echo" (api_key, injected as "X-Upstream-Key: Key <k>")
// at base and connects upstreamKey; it returns the connection id.
func echoProvider(t *testing.T, h *harness, base string) string {
	t.Helper()
	writer := h.createKey("connections:write", "providers:write")
	h.expect(h.do("PUT", "/v1/providers/echo", writer, map[string]any{
		"auth_mode": "api_key", "api_base_url": base, "api_key_auth": "header",
		"api_key_header": "X-Upstream-Key", "api_key_format": "Key {key}",
		"static_headers": map[string]string{"X-Static": "from-template"},
	}), 200, "")
	c := h.expect(h.do("POST", "/v1/connections", writer, map[string]any{
		"provider": "echo", "end_user_id": "u-1", "api_key": upstreamKey}), 201, "")
	return c.Body["id"].(string)
}

// send is a raw request through the harness's server (headers of the caller's choice).
func send(t *testing.T, base, method, path string, hdr http.Header, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, body)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	// Never follow redirects (the proxy's answer is under test) and never use a proxy from
	// the environment.
	client := &http.Client{Transport: &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, raw
}

func bearerHdr(key string, kv ...string) http.Header {
	h := http.Header{"Authorization": {"Bearer " + key}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func requireNoSentinel(t *testing.T, res *http.Response, body []byte) {
	t.Helper()
	require.NotContains(t, string(body), upstreamKey)
	for k, vs := range res.Header {
		for _, v := range vs {
			require.NotContains(t, v, upstreamKey, "response header %s", k)
		}
	}
}

func TestForwardHeadersAndCredentials(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			h := newHarness(t, d, nil)
			up := newUpstream(t)
			id := echoProvider(t, h, up.URL+"/base/")
			reader := h.createKey("tokens:read")

			hdr := bearerHdr(reader,
				"Cookie", "app_session=SECRETcookie",
				"Proxy-Authorization", "Basic cHJveHk6cHc=",
				"X-Forwarded-For", "10.1.2.3",
				"Forwarded", "for=10.1.2.3",
				"Connection", "X-Drop-Me",
				"X-Drop-Me", "1",
				"X-Upstream-Key", "Key caller-supplied",
				"X-Static", "caller",
				"Accept", "application/vnd.github+json",
				"X-Custom", "kept")
			res, body := send(t, h.srv.URL, "POST", "/v1/proxy/"+id+"/echo?per_page=5&q=a%20b", hdr, strings.NewReader(`{"hello":"world"}`))
			require.Equal(t, http.StatusOK, res.StatusCode, "body: %s", body)
			got := up.last(t)
			require.Equal(t, "POST", got.Method)
			require.Equal(t, "/base/echo", got.Path)
			require.Equal(t, "per_page=5&q=a%20b", got.Query)
			require.Equal(t, `{"hello":"world"}`, string(got.Body))

			// The credential the provider expects, and only it.
			require.Equal(t, "Key "+upstreamKey, got.Header.Get("X-Upstream-Key"))
			require.Len(t, got.Header.Values("X-Upstream-Key"), 1)
			require.Empty(t, got.Header.Get("Authorization"), "the caller's API key never reaches the provider")
			require.NotContains(t, fmt.Sprint(got.Header), reader)
			for _, k := range []string{"Cookie", "Proxy-Authorization", "X-Forwarded-For", "Forwarded", "X-Drop-Me"} {
				require.Empty(t, got.Header.Get(k), k)
			}
			require.Equal(t, "from-template", got.Header.Get("X-Static"))
			require.Equal(t, "application/vnd.github+json", got.Header.Get("Accept"))
			require.Equal(t, "kept", got.Header.Get("X-Custom"))

			// What comes back: the provider's answer without its cookie, the header that
			// echoed the credential, hop-by-hop headers, or its caching.
			requireNoSentinel(t, res, body)
			for _, k := range []string{"Set-Cookie", "Access-Control-Allow-Origin", "Alt-Svc", "Clear-Site-Data"} {
				require.Empty(t, res.Header.Get(k), k)
			}
			require.Empty(t, res.Header.Get("X-Echo-Key"))
			require.Empty(t, res.Header.Get("X-Hop"))
			require.Equal(t, "yes", res.Header.Get("X-Provider"))
			require.Equal(t, "no-store", res.Header.Get("Cache-Control"))
			require.NotEmpty(t, res.Header.Get("X-Request-Id"))
			require.JSONEq(t, `{"method":"POST","path":"/base/echo","bytes":17}`, string(body))

			// Scope, unknown and disconnected connections, like the token endpoint.
			writer := h.createKey("connections:write")
			h.expect(h.do("GET", "/v1/proxy/"+id+"/echo", writer, nil), 403, "forbidden")
			h.expect(h.do("GET", "/v1/proxy/conn_nope/echo", reader, nil), 404, "not_found")
			h.expect(h.do("DELETE", "/v1/connections/"+id, writer, nil), 200, "")
			h.expect(h.do("GET", "/v1/proxy/"+id+"/echo", reader, nil), 410, "disconnected")

			// The forward is audited (method and status, never the path or query).
			h.app.Audit.Stop(t.Context())
			ev := h.expect(h.do("GET", "/v1/audit?limit=1000", h.createKey("audit:read"), nil), 200, "")
			var found bool
			for _, e := range ev.Body["events"].([]any) {
				if e.(map[string]any)["type"] == "proxy.request" {
					found = true
				}
			}
			require.True(t, found, "a proxy.request event")
			require.NotContains(t, ev.Raw, "per_page")
		})
	}
}

func TestForwardPathEscapesRefused(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	up := newUpstream(t)
	id := echoProvider(t, h, up.URL+"/base")
	reader := h.createKey("tokens:read")
	for _, p := range []string{
		"/../admin", "/echo/../../admin", "/%2e%2e/admin", "/%2E%2E%2fadmin", "/a%2f..%2f..%2fadmin",
		"/a%5c..%5cadmin", "/%252e%252e/admin", "/..;/admin", "//evil.example/x", "/a%00",
	} {
		t.Run(p, func(t *testing.T) {
			h.expect(h.do("GET", "/v1/proxy/"+id+p, reader, nil), 400, "invalid_path")
		})
	}
	require.Zero(t, up.hits.Load(), "no escape reached the upstream")

	// A backslash cannot even be sent by net/http's client: write it raw.
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/proxy/%s/a\\..\\..\\admin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", id, reader)
	raw, _ := io.ReadAll(conn)
	require.Contains(t, string(raw), "invalid_path")
	require.Zero(t, up.hits.Load())

	// Control: an honest path goes through.
	h.expect(h.do("GET", "/v1/proxy/"+id+"/echo", reader, nil), 200, "")
}

// TestForwardRedirectsStayUnderBasePath: a same-origin redirect out of api_base_url's path
// (another tenant of a host scoped by path) is returned to the caller unfollowed, and the
// credential never reaches that path; a redirect under the base path is followed.
func TestForwardRedirectsStayUnderBasePath(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	up := newUpstream(t)
	id := echoProvider(t, h, up.URL+"/base")
	reader := h.createKey("tokens:read")

	r := h.expect(h.do("GET", "/v1/proxy/"+id+"/redirect-same", reader, nil), 200, "")
	require.Contains(t, r.Raw, `"path":"/base/echo"`, "under the base path: followed")
	for path, loc := range map[string]string{"/redirect-tenant": "/tenant-b/steal", "/redirect-prefix": "/basement/steal",
		"/redirect-encoded": "/base/%2e%2e/tenant-b/steal"} {
		res, body := send(t, h.srv.URL, "GET", "/v1/proxy/"+id+path, bearerHdr(reader), nil)
		require.Equal(t, 3, res.StatusCode/100, "%s: body %s", path, body)
		require.Equal(t, loc, res.Header.Get("Location"), "%s: passed back, not followed", path)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	for _, req := range up.reqs {
		require.True(t, strings.HasPrefix(req.Path, "/base/") && !strings.Contains(req.Path, "%2e"),
			"the upstream was asked for %s", req.Path)
	}
}

func TestForwardRetriesAndRedirects(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	up := newUpstream(t)
	id := echoProvider(t, h, up.URL+"/base")
	reader := h.createKey("tokens:read")

	// GET: retried on 503 with Retry-After: 0, at most twice.
	up.flaky.Store(2)
	r := h.expect(h.do("GET", "/v1/proxy/"+id+"/flaky", reader, nil), 200, "")
	require.Equal(t, "recovered", r.Raw)
	require.EqualValues(t, 3, up.hits.Load())
	up.hits.Store(0)
	up.flaky.Store(5)
	h.expect(h.do("GET", "/v1/proxy/"+id+"/flaky", reader, nil), 503, "")
	require.EqualValues(t, 3, up.hits.Load(), "one try and two retries")

	// POST is not idempotent: never retried.
	up.hits.Store(0)
	up.flaky.Store(1)
	h.expect(h.do("POST", "/v1/proxy/"+id+"/flaky", reader, `{}`), 503, "")
	require.EqualValues(t, 1, up.hits.Load())

	// A Retry-After beyond 5 s is the caller's to honour.
	up.hits.Store(0)
	start := time.Now()
	r = h.expect(h.do("GET", "/v1/proxy/"+id+"/slow-retry", reader, nil), 429, "")
	require.Equal(t, "120", r.Header.Get("Retry-After"))
	require.EqualValues(t, 1, up.hits.Load())
	require.Less(t, time.Since(start), 3*time.Second)

	// Redirects: same origin followed (with the credential); elsewhere never.
	r = h.expect(h.do("GET", "/v1/proxy/"+id+"/redirect-same", reader, nil), 200, "")
	require.Contains(t, r.Raw, `"path":"/base/echo"`)
	require.Equal(t, "Key "+upstreamKey, up.last(t).Header.Get("X-Upstream-Key"))
	res, body := send(t, h.srv.URL, "GET", "/v1/proxy/"+id+"/redirect-metadata", bearerHdr(reader), nil)
	require.Equal(t, http.StatusTemporaryRedirect, res.StatusCode, "body: %s", body)
	require.Contains(t, res.Header.Get("Location"), "169.254.169.254", "passed back, not followed")
	res, body = send(t, h.srv.URL, "GET", "/v1/proxy/"+id+"/redirect-other", bearerHdr(reader), nil)
	require.Equal(t, http.StatusTemporaryRedirect, res.StatusCode, "body: %s", body)

	// A provider's 401 on an API-key connection is passed through (no refresh).
	h.expect(h.do("GET", "/v1/proxy/"+id+"/unauthorized", reader, nil), 401, "")

	// Streaming: server-sent events arrive whole.
	r = h.expect(h.do("GET", "/v1/proxy/"+id+"/stream", reader, nil), 200, "")
	require.Equal(t, "data: 0\n\ndata: 1\n\ndata: 2\n\n", r.Raw)

	// Bodies over the API's 1 MiB limit stream through (up to 32 MiB).
	big := bytes.Repeat([]byte("x"), 3<<20)
	r = h.expect(h.do("PUT", "/v1/proxy/"+id+"/echo", reader, big), 200, "")
	require.Contains(t, r.Raw, fmt.Sprintf(`"bytes":%d`, len(big)))
	res, body = send(t, h.srv.URL, "PUT", "/v1/proxy/"+id+"/echo", bearerHdr(reader),
		io.LimitReader(zeros{}, proxy.MaxForwardBodyBytes+1))
	require.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode, "body: %s", body)
	// Elsewhere the 1 MiB limit stands.
	h.expect(h.do("POST", "/v1/connections", reader, bytes.Repeat([]byte(" "), 2<<20)), 413, "payload_too_large")
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// ssrfServer is the app's store and keyrings behind a second proxy.Server whose outbound
// client resolves names from a table, so names that resolve to private addresses can be
// tested without DNS.
func ssrfServer(t *testing.T, h *harness, allow []netip.Prefix, names map[string]netip.Addr) *httptest.Server {
	t.Helper()
	resolver := outbound.ResolverFunc(func(_ context.Context, host string) ([]netip.Addr, error) {
		if a, ok := names[host]; ok {
			return []netip.Addr{a}, nil
		}
		return nil, fmt.Errorf("no such host %s", host)
	})
	oc, err := outbound.New(outbound.Policy{AllowCIDRs: allow, MaxResponseBytes: outbound.NoResponseLimit}, outbound.WithResolver(resolver))
	require.NoError(t, err)
	cfg := proxy.Config{PublicURL: "http://127.0.0.1:8080", Dev: true, OutboundAllowCIDRs: allow}
	s, err := proxy.New(cfg, proxy.Deps{Admin: h.app.Admin, Store: h.app.Store, Creds: h.app.Creds, Secrets: h.app.Secrets,
		Audit: h.app.Audit, Providers: providersFor(t, h, cfg)},
		proxy.WithOutbound(oc))
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// putRawProvider stores a provider whose api_base_url skipped the configuration-time
// check, as a row written before a policy change, or by a bug, would.
func putRawProvider(t *testing.T, h *harness, key, base string) {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{"name": key, "auth_mode": "api_key", "api_base_url": base,
		"api_key_auth": "header", "api_key_header": "X-Upstream-Key"})
	require.NoError(t, err)
	now := time.Now().UTC()
	_, err = h.app.Store.PutProvider(t.Context(), store.Provider{ID: ids.New(ids.Provider), WorkspaceID: store.DefaultWorkspaceID,
		Key: key, AuthMode: "api_key", Config: string(cfg), CreatedAt: now, UpdatedAt: now}, nil, true)
	require.NoError(t, err)
}

func TestForwardSSRF(t *testing.T) {
	// No private range allowed: loopback is as forbidden as the metadata service.
	h := newHarness(t, store.SQLite, map[string]string{"AUTHPIPE_OUTBOUND_ALLOW_CIDRS": ""})
	up := newUpstream(t)
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	writer := h.createKey("connections:write", "providers:write")
	reader := h.createKey("tokens:read")

	// Configuration time: private api_base_url values are refused outright.
	for _, base := range []string{"http://127.0.0.1:" + port, "http://169.254.169.254/", "http://2130706433/", "http://[::ffff:127.0.0.1]/"} {
		h.expect(h.do("PUT", "/v1/providers/p", writer, map[string]any{"auth_mode": "api_key", "api_base_url": base}), 400, "")
	}

	names := map[string]netip.Addr{
		"rebind.example.com": netip.MustParseAddr("127.0.0.1"),
		"meta.example.com":   netip.MustParseAddr("169.254.169.254"),
		"mapped.example.com": netip.MustParseAddr("::ffff:127.0.0.1"),
	}
	srv := ssrfServer(t, h, nil, names)
	cases := map[string]string{
		"decimal":          "http://2130706433:" + port,
		"octal":            "http://0177.0.0.1:" + port,
		"hex":              "http://0x7f.0.0.1:" + port,
		"short":            "http://127.1:" + port,
		"ipv4-mapped ipv6": "http://[::ffff:127.0.0.1]:" + port,
		"unspecified":      "http://0.0.0.0:" + port,
		"loopback":         "http://127.0.0.1:" + port,
		"localhost":        "http://localhost:" + port,
		"sub.localhost":    "http://api.localhost:" + port,
		"name to loopback": "http://rebind.example.com:" + port,
		"name to mapped":   "http://mapped.example.com:" + port,
		"name to metadata": "http://meta.example.com:" + port,
		"metadata literal": "http://169.254.169.254:" + port,
	}
	for name, base := range cases {
		t.Run(name, func(t *testing.T) {
			key := "ssrf-" + strings.ReplaceAll(strings.ReplaceAll(name, " ", "-"), ".", "-")
			putRawProvider(t, h, key, base+"/base")
			c := h.expect(h.do("POST", "/v1/connections", writer, map[string]any{
				"provider": key, "end_user_id": "u", "api_key": upstreamKey}), 201, "")
			res, body := send(t, srv.URL, "GET", "/v1/proxy/"+c.Body["id"].(string)+"/echo", bearerHdr(reader), nil)
			require.Equal(t, http.StatusBadGateway, res.StatusCode, "body: %s", body)
			require.Contains(t, string(body), `"code":"unsafe_url"`)
			requireNoSentinel(t, res, body)
		})
	}
	require.Zero(t, up.hits.Load(), "no payload reached the upstream")

	// Positive control: with loopback allowed the same upstream answers through a name
	// that resolves to it, so the refusals above are the policy's doing.
	ok := ssrfServer(t, h, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, names)
	putRawProvider(t, h, "control", "http://rebind.example.com:"+port+"/base")
	c := h.expect(h.do("POST", "/v1/connections", writer, map[string]any{
		"provider": "control", "end_user_id": "u", "api_key": upstreamKey}), 201, "")
	res, body := send(t, ok.URL, "GET", "/v1/proxy/"+c.Body["id"].(string)+"/echo", bearerHdr(reader), nil)
	require.Equal(t, http.StatusOK, res.StatusCode, "body: %s", body)
	require.EqualValues(t, 1, up.hits.Load())

	// A redirect to the metadata address, or to another host, is never followed.
	for _, p := range []string{"/redirect-metadata", "/redirect-other"} {
		res, body = send(t, ok.URL, "GET", "/v1/proxy/"+c.Body["id"].(string)+p, bearerHdr(reader), nil)
		require.Equal(t, http.StatusTemporaryRedirect, res.StatusCode, "body: %s", body)
	}
}

// fakeRefresher stands in for the refresher: it hands out a new access token.
type fakeRefresher struct {
	calls atomic.Int32
	fail  bool
}

func (f *fakeRefresher) ForceRefresh(_ context.Context, _, _ string) (vault.Secret, error) {
	f.calls.Add(1)
	if f.fail {
		return vault.Secret{}, errors.New("provider down")
	}
	return vault.NewSecret("at_NEW_token"), nil
}

// putOAuthProvider stores the oauth2 provider "oprov" whose API is up.
func putOAuthProvider(t *testing.T, h *harness, up *upstream) {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{"name": "oprov", "auth_mode": "oauth2", "api_base_url": up.URL + "/base"})
	require.NoError(t, err)
	now := time.Now().UTC()
	_, err = h.app.Store.PutProvider(t.Context(), store.Provider{ID: ids.New(ids.Provider), WorkspaceID: store.DefaultWorkspaceID,
		Key: "oprov", AuthMode: "oauth2", Config: string(cfg), CreatedAt: now, UpdatedAt: now}, nil, true)
	require.NoError(t, err)
}

// addOAuthConn stores an active "oprov" connection holding access token at, expiring at
// exp (nil: never).
func addOAuthConn(t *testing.T, h *harness, at string, exp *time.Time) string {
	t.Helper()
	now := time.Now().UTC()
	connID := ids.New(ids.Connection)
	prov, err := h.app.Providers.ResolveCached(t.Context(), store.DefaultWorkspaceID, "oprov")
	require.NoError(t, err)
	origins := prov.AccessTokenOrigins() // bound as the callback binds a new connection
	sealed, err := h.app.Creds.Seal(t.Context(), vault.AccessTokenBinding(store.DefaultWorkspaceID, connID, origins), vault.NewSecret(at))
	require.NoError(t, err)
	require.NoError(t, h.app.Store.CreateConnection(t.Context(), store.Connection{ID: connID, WorkspaceID: store.DefaultWorkspaceID,
		Provider: "oprov", EndUserID: "u", AuthMode: "oauth2", Status: store.StatusActive, Scopes: store.Strings{},
		ExpiresAt: exp, Version: 1, CreatedAt: now, UpdatedAt: now},
		store.Credential{ConnectionID: connID, WorkspaceID: store.DefaultWorkspaceID, AccessToken: sealed, TokenType: "Bearer",
			AccessOrigins: store.StoredOrigins(origins), UpdatedAt: now}))
	return connID
}

// Without a refresher an expired access token is refused alike by the token endpoint and
// the forwarding proxy (503 refresh_unavailable), and never reaches the provider; a valid
// one is served by both (refresher.Tokens decides for both).
func TestExpiredTokenWithoutRefresher(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	up := newUpstream(t)
	putOAuthProvider(t, h, up)
	past, soon := time.Now().Add(-time.Minute), time.Now().Add(5*time.Minute) // soon: inside the lead window
	expired, valid := addOAuthConn(t, h, "at_STORED_token", &past), addOAuthConn(t, h, "at_STORED_token", &soon)
	reader := h.createKey("tokens:read")
	cfg := proxy.Config{PublicURL: "http://127.0.0.1:8080", Dev: true, OutboundAllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	s, err := proxy.New(cfg, proxy.Deps{Admin: h.app.Admin, Store: h.app.Store, Creds: h.app.Creds, Secrets: h.app.Secrets,
		Audit: h.app.Audit, Providers: providersFor(t, h, cfg)})
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	res, body := send(t, srv.URL, "GET", "/v1/connections/"+expired+"/token", bearerHdr(reader), nil)
	require.Equal(t, 503, res.StatusCode, "body: %s", body)
	require.Contains(t, string(body), "refresh_unavailable")
	res, body = send(t, srv.URL, "GET", "/v1/proxy/"+expired+"/echo", bearerHdr(reader), nil)
	require.Equal(t, 503, res.StatusCode, "body: %s", body)
	require.Contains(t, string(body), "refresh_unavailable")
	require.NotContains(t, string(body), "at_STORED_token")
	require.Zero(t, up.hits.Load(), "an expired token never reaches the provider")
	// The target is checked before the credential is opened (or refreshed): a path that
	// leaves the base URL is refused as such, whatever the token's state.
	res, body = send(t, srv.URL, "GET", "/v1/proxy/"+expired+"/%2e%2e/escape", bearerHdr(reader), nil)
	require.Equal(t, 400, res.StatusCode, "body: %s", body)
	require.Contains(t, string(body), "invalid_path")

	res, body = send(t, srv.URL, "GET", "/v1/connections/"+valid+"/token", bearerHdr(reader), nil)
	require.Equal(t, 200, res.StatusCode, "body: %s", body)
	require.Contains(t, string(body), "at_STORED_token")
	res, body = send(t, srv.URL, "GET", "/v1/proxy/"+valid+"/echo", bearerHdr(reader), nil)
	require.Equal(t, 200, res.StatusCode, "body: %s", body)
	require.EqualValues(t, 1, up.hits.Load())
}

func TestForwardOAuthRefreshOn401(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	up := newUpstream(t)
	putOAuthProvider(t, h, up)
	connID := addOAuthConn(t, h, "at_OLD_token", nil)
	reader := h.createKey("tokens:read")

	for _, tc := range []struct {
		name   string
		fail   bool
		status int
	}{{"refreshed and retried", false, 200}, {"refresh fails: the 401 stands", true, 401}} {
		t.Run(tc.name, func(t *testing.T) {
			ref := &fakeRefresher{fail: tc.fail}
			cfg := proxy.Config{PublicURL: "http://127.0.0.1:8080", Dev: true, OutboundAllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
			s, err := proxy.New(cfg, proxy.Deps{Admin: h.app.Admin, Store: h.app.Store, Creds: h.app.Creds, Secrets: h.app.Secrets,
				Audit: h.app.Audit, Providers: providersFor(t, h, cfg)},
				proxy.WithTokenRefresher(ref))
			require.NoError(t, err)
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			up.hits.Store(0)
			// POST too: a 401 means the provider did not act, so the body is resent.
			res, body := send(t, srv.URL, "POST", "/v1/proxy/"+connID+"/oauth", bearerHdr(reader), strings.NewReader(`{"n":1}`))
			require.Equal(t, tc.status, res.StatusCode, "body: %s", body)
			require.EqualValues(t, 1, ref.calls.Load(), "one refresh")
			if tc.status == 200 {
				require.Equal(t, `{"n":1}`, string(body))
				require.EqualValues(t, 2, up.hits.Load())
			} else {
				require.EqualValues(t, 1, up.hits.Load())
			}
			require.NotContains(t, string(body), "at_OLD_token")
			require.NotContains(t, string(body), "at_NEW_token")
		})
	}
}

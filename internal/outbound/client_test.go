package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// scriptedResolver answers from a table; unknown names fail.
func scriptedResolver(answers map[string][]netip.Addr) ResolverFunc {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		if a, ok := answers[host]; ok {
			return a, nil
		}
		return nil, fmt.Errorf("no such host %s", host)
	}
}

func TestDialRefusesSSRFPayloads(t *testing.T) {
	srv := newCountingServer(t, nil)
	answers := map[string][]netip.Addr{}
	for _, tc := range ssrfPayloads {
		if tc.resolve != nil {
			answers[tc.host] = tc.resolve
		}
	}
	var events []Event
	var mu sync.Mutex
	log := &dialLog{}
	c := newClient(t, Policy{}, WithResolver(scriptedResolver(answers)), recordDials(log, ""),
		WithMetrics(func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }))

	for _, tc := range ssrfPayloads {
		t.Run(tc.name, func(t *testing.T) {
			raw := "http://" + tc.host + ":" + srv.port() + "/token?code=s3cr3t"
			for _, hc := range []*http.Client{c.TokenClient(), c.ForwardClient()} {
				resp, err := get(t, hc, raw)
				require.Nil(t, resp)
				require.ErrorIs(t, err, ErrUnsafeURL)
				var ue *UnsafeAddressError
				require.ErrorAs(t, err, &ue)
				require.NotContains(t, ue.Error(), "s3cr3t")
				require.NotContains(t, Redact(err).Error(), "s3cr3t")
				require.ErrorIs(t, Redact(err), ErrUnsafeURL)
			}
		})
	}
	require.Zero(t, srv.hits.Load(), "no payload reached the server")
	require.Empty(t, log.list(), "nothing was dialed")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 2*len(ssrfPayloads))
	for _, e := range events {
		require.Equal(t, EventUnsafeAddress, e.Kind)
	}

	// Positive control: the same server is reachable once loopback is allowed, so the
	// refusals above are the policy's doing and not a broken test server.
	ok := newClient(t, Policy{AllowCIDRs: loopbackAllow}, WithResolver(scriptedResolver(answers)))
	for _, host := range []string{"127.0.0.1", "localhost", "evil.example.com"} {
		resp, err := get(t, ok.TokenClient(), "http://"+host+":"+srv.port()+"/")
		require.NoError(t, err, host)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.EqualValues(t, 3, srv.hits.Load())
}

func TestDNSRebindingDialsOnlyTheCheckedAddress(t *testing.T) {
	srv := newCountingServer(t, nil)
	public := netip.MustParseAddr("93.184.215.14")
	var lookups atomic.Int32
	// First answer public, every later answer private: the classic rebinding attacker.
	rebinder := ResolverFunc(func(context.Context, string) ([]netip.Addr, error) {
		if lookups.Add(1) == 1 {
			return []netip.Addr{public}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	})
	log := &dialLog{}
	// recordDials sends the connection for the "public" address to the local server,
	// since a test cannot reach the internet.
	c := newClient(t, Policy{}, WithResolver(rebinder), recordDials(log, srv.Listener.Addr().String()))
	hc := c.TokenClient()
	target := "http://rebind.example:" + srv.port() + "/"

	resp, err := get(t, hc, target)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, []string{netip.AddrPortFrom(public, mustPort(t, srv.port())).String()}, log.list(),
		"the dialer connects to the checked IP literal, not the name")
	require.EqualValues(t, 1, lookups.Load(), "resolved once per dial")

	c.CloseIdleConnections()
	_, err = get(t, hc, target)
	require.ErrorIs(t, err, ErrUnsafeURL, "the rebound answer is refused")
	require.Len(t, log.list(), 1, "the private address was never dialed")
	require.EqualValues(t, 1, srv.hits.Load())
}

func TestDialChecksEveryAnswer(t *testing.T) {
	log := &dialLog{}
	res := scriptedResolver(map[string][]netip.Addr{
		"mixed.example": {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.0.0.1")},
		"empty.example": {},
	})
	c := newClient(t, Policy{}, WithResolver(res), recordDials(log, ""))
	_, err := get(t, c.TokenClient(), "http://mixed.example/")
	require.ErrorIs(t, err, ErrUnsafeURL)
	_, err = get(t, c.TokenClient(), "http://empty.example/")
	require.ErrorContains(t, err, "no addresses")
	require.Empty(t, log.list())
}

func TestDialerControlRechecksSocketAddress(t *testing.T) {
	al, err := newAllowList(nil)
	require.NoError(t, err)
	d := newDialer(al, net.DefaultResolver, DefaultDialTimeout, func(Event) {})
	require.ErrorIs(t, d.control("tcp4", "127.0.0.1:80", nil), ErrUnsafeURL)
	require.ErrorIs(t, d.control("tcp6", "[::ffff:169.254.169.254]:80", nil), ErrUnsafeURL)
	require.ErrorIs(t, d.control("tcp6", "[fe80::1%lo]:80", nil), ErrUnsafeURL)
	require.ErrorIs(t, d.control("tcp", "garbage", nil), ErrUnsafeURL)
	require.NoError(t, d.control("tcp4", "93.184.215.14:443", nil))

	// The Control hook is what the real net.Dialer runs: with the resolve step bypassed,
	// a connect to loopback is still refused.
	srv := newCountingServer(t, nil)
	_, err = d.net.DialContext(t.Context(), "tcp", srv.Listener.Addr().String())
	require.ErrorIs(t, err, ErrUnsafeURL)
	require.Zero(t, srv.hits.Load())
}

func TestTokenClientDoesNotFollowRedirects(t *testing.T) {
	target := newCountingServer(t, nil)
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			origin := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/steal", code)
			})
			c := newClient(t, Policy{AllowCIDRs: loopbackAllow})
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, origin.URL+"/token",
				strings.NewReader("grant_type=authorization_code&code=abc&client_secret=s3cr3t"))
			require.NoError(t, err)
			resp, err := c.TokenClient().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, code, resp.StatusCode, "the redirect is returned as is")
			require.Equal(t, target.URL+"/steal", resp.Header.Get("Location"))
			require.EqualValues(t, 1, origin.hits.Load())
		})
	}
	require.Zero(t, target.hits.Load(), "the redirect target was never contacted")
}

func TestForwardClientRedirects(t *testing.T) {
	other := newCountingServer(t, nil)
	var stolen atomic.Int32
	var srv *countingServer
	srv = newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/", http.StatusFound)
		case "/cross":
			http.Redirect(w, r, other.URL+"/x", http.StatusTemporaryRedirect)
		case "/alias": // same host and port, spelled differently: still another origin
			http.Redirect(w, r, "http://localhost:"+srv.port()+"/done", http.StatusFound)
		case "/a":
			http.Redirect(w, r, "/b", http.StatusFound)
		case "/b":
			http.Redirect(w, r, srv.URL+"/done", http.StatusTemporaryRedirect)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/done", "/tenant-a/done":
			_, _ = fmt.Fprint(w, "done auth="+r.Header.Get("Authorization"))
		case "/tenant-a/in":
			http.Redirect(w, r, "/tenant-a/done", http.StatusFound)
		case "/tenant-a/other-tenant":
			http.Redirect(w, r, "/tenant-b/steal", http.StatusTemporaryRedirect)
		case "/tenant-a/prefix":
			http.Redirect(w, r, "/tenant-ab/steal", http.StatusTemporaryRedirect)
		case "/tenant-a/encoded":
			http.Redirect(w, r, "/tenant-a/%2e%2e/tenant-b/steal", http.StatusTemporaryRedirect)
		case "/tenant-a/dotdot":
			http.Redirect(w, r, "/tenant-a/x/../../tenant-b/steal", http.StatusTemporaryRedirect)
		default:
			if strings.Contains(r.URL.EscapedPath(), "steal") {
				stolen.Add(1)
			}
		}
	})
	log := &dialLog{}
	var refused atomic.Int32
	c := newClient(t, Policy{AllowCIDRs: loopbackAllow}, recordDials(log, ""),
		WithMetrics(func(e Event) {
			if e.Kind == EventRedirectRefused {
				refused.Add(1)
			}
		}))
	fc := c.ForwardClient()
	// scoped issues a GET under a redirect scope (the provider's api_base_url).
	scoped := func(t *testing.T, base, path string) (*http.Response, error) {
		t.Helper()
		u, err := url.Parse(base)
		require.NoError(t, err)
		req, err := http.NewRequestWithContext(WithRedirectScope(t.Context(), u), http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer upstream-token")
		resp, err := fc.Do(req)
		if err == nil {
			t.Cleanup(func() { _ = resp.Body.Close() })
		}
		return resp, err
	}

	t.Run("to metadata is not followed", func(t *testing.T) {
		resp, err := scoped(t, srv.URL, "/metadata")
		require.NoError(t, err)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		for _, a := range log.list() {
			require.NotContains(t, a, "169.254", "metadata address dialed")
		}
	})
	t.Run("cross-origin is not followed", func(t *testing.T) {
		for _, path := range []string{"/cross", "/alias"} {
			resp, err := scoped(t, srv.URL+"/", path)
			require.NoError(t, err)
			require.Equal(t, http.StatusFound/100, resp.StatusCode/100, path)
		}
		require.Zero(t, other.hits.Load())
	})
	t.Run("same-origin is followed with headers kept", func(t *testing.T) {
		resp, err := scoped(t, srv.URL, "/a")
		require.NoError(t, err)
		body, err := ReadLimited(resp.Body, 1024)
		require.NoError(t, err)
		require.Equal(t, "done auth=Bearer upstream-token", string(body))
	})
	t.Run("at most three", func(t *testing.T) {
		before := srv.hits.Load()
		_, err := scoped(t, srv.URL+"/", "/loop")
		require.ErrorIs(t, err, ErrTooManyRedirects)
		require.EqualValues(t, 1+MaxForwardRedirects, srv.hits.Load()-before)
	})
	t.Run("under the base path is followed", func(t *testing.T) {
		resp, err := scoped(t, srv.URL+"/tenant-a/", "/tenant-a/in")
		require.NoError(t, err)
		body, err := ReadLimited(resp.Body, 1024)
		require.NoError(t, err)
		require.Equal(t, "done auth=Bearer upstream-token", string(body))
	})
	t.Run("out of the base path is not followed", func(t *testing.T) {
		for _, path := range []string{"/tenant-a/other-tenant", "/tenant-a/prefix", "/tenant-a/encoded", "/tenant-a/dotdot"} {
			resp, err := scoped(t, srv.URL+"/tenant-a", path)
			require.NoError(t, err)
			require.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode, path)
			require.NotEmpty(t, resp.Header.Get("Location"), "the redirect is returned as is")
		}
		require.Zero(t, stolen.Load(), "no request left the base path")
	})
	t.Run("without a scope nothing is followed", func(t *testing.T) {
		before := srv.hits.Load()
		resp, err := get(t, fc, srv.URL+"/tenant-a/in")
		require.NoError(t, err)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.EqualValues(t, 1, srv.hits.Load()-before)
	})
	require.EqualValues(t, 9, refused.Load())
}

func TestUnderBasePath(t *testing.T) {
	for _, tc := range []struct {
		base, path string
		want       bool
	}{
		{"", "/anything", true},
		{"/", "/anything", true},
		{"/v1", "/v1", true},
		{"/v1/", "/v1/users/1", true},
		{"/t/acme", "/t/acme/x;v=1", true},
		{"/t/acme", "/t/acmex/y", false},
		{"/t/acme", "/t/other/y", false},
		{"/t/acme", "/t/acme/../other", false},
		{"/t/acme", "/t/acme/..;/other", false},
		{"/t/acme", "/t/acme/%2E%2E/other", false},
		{"/t/acme", "/t/acme/%2f..%2fother", false},
		{"/t/acme", "/t/acme/%252e%252e/other", false},
		{"/t/acme", "/t/acme/..\\other", false},
		{"/t/acme", "/T/acme/x", false},
	} {
		require.Equal(t, tc.want, UnderBasePath(tc.base, tc.path), "%q under %q", tc.path, tc.base)
	}
}

func TestOrigin(t *testing.T) {
	require.Equal(t, Origin("https", "Example.com"), Origin("HTTPS", "example.com:443"))
	require.Equal(t, Origin("http", "example.com"), Origin("http", "example.com:80"))
	require.NotEqual(t, Origin("http", "example.com"), Origin("https", "example.com"))
	require.NotEqual(t, Origin("https", "example.com"), Origin("https", "example.com:8443"))
	require.NotEqual(t, Origin("https", "example.com"), Origin("https", "example.com.evil"))
	require.Equal(t, Origin("https", "[::1]"), Origin("https", "[::1]:443"))
}

func TestRedact(t *testing.T) {
	base := &url.Error{Op: "Post", URL: "https://user:pw@api.example.com/v1/x?api_key=s3cr3t#frag", Err: ErrUnsafeURL}
	for name, err := range map[string]error{
		"outermost": base,
		"wrapped":   fmt.Errorf("refresh: %w", base),
	} {
		t.Run(name, func(t *testing.T) {
			red := Redact(err)
			require.NotContains(t, red.Error(), "s3cr3t")
			require.NotContains(t, red.Error(), "pw")
			require.Contains(t, red.Error(), "https://api.example.com/v1/x")
			require.ErrorIs(t, red, ErrUnsafeURL)
		})
	}
	plain := errors.New("x")
	require.Equal(t, plain, Redact(plain))
	require.Nil(t, Redact(nil))
}

func TestNoProxyFromEnvironment(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	srv := newCountingServer(t, nil)
	res := scriptedResolver(map[string][]netip.Addr{"api.example": {netip.MustParseAddr("127.0.0.1")}})
	c := newClient(t, Policy{AllowCIDRs: loopbackAllow}, WithResolver(res))
	require.Nil(t, c.transport.base.Proxy)
	// A non-loopback name (Go never proxies loopback) reaches the server directly.
	resp, err := get(t, c.TokenClient(), "http://api.example:"+srv.port()+"/")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Nil(t, c.TokenClient().Jar)
	require.Nil(t, c.ForwardClient().Jar)
}

func mustPort(t *testing.T, s string) uint16 {
	t.Helper()
	var p uint16
	_, err := fmt.Sscan(s, &p)
	require.NoError(t, err)
	return p
}

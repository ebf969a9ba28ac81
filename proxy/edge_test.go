package proxy_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/dpop/dpoptest"
	"github.com/authpipe/authpipe-proxy/internal/ratelimit"
	"github.com/authpipe/authpipe-proxy/proxy"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// edgeServer is the harness's store behind a second server with its own edge settings.
func edgeServer(t *testing.T, h *harness, ec proxy.EdgeConfig) *httptest.Server {
	t.Helper()
	cfg := proxy.Config{PublicURL: "http://127.0.0.1:8080", Dev: true, Edge: ec}
	s, err := proxy.New(cfg, proxy.Deps{Admin: h.app.Admin, Store: h.app.Store, Creds: h.app.Creds, Secrets: h.app.Secrets,
		Audit: h.app.Audit, Providers: providersFor(t, h, cfg)})
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func TestResolveClient(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	cases := []struct {
		name, remote string
		xff          []string
		proto        string
		tls          bool
		wantIP       string
		wantScheme   string
	}{
		{"untrusted peer: headers ignored", "203.0.113.9:5555", []string{"1.2.3.4"}, "https", false, "203.0.113.9", "http"},
		{"trusted peer, one hop", "10.0.0.2:1", []string{"198.51.100.7"}, "https", false, "198.51.100.7", "https"},
		{"rightmost untrusted hop wins", "10.0.0.2:1", []string{"6.6.6.6, 198.51.100.7, 10.0.0.3"}, "", false, "198.51.100.7", "http"},
		{"spoofed left entries ignored", "10.0.0.2:1", []string{"127.0.0.1", "198.51.100.7"}, "", false, "198.51.100.7", "http"},
		{"all trusted: leftmost", "10.0.0.2:1", []string{"10.0.0.9, 10.0.0.8"}, "", false, "10.0.0.9", "http"},
		{"garbage stops the walk", "10.0.0.2:1", []string{"198.51.100.7, nonsense"}, "", false, "10.0.0.2", "http"},
		{"no header", "10.0.0.2:1", nil, "", false, "10.0.0.2", "http"},
		{"bogus proto ignored", "10.0.0.2:1", nil, "gopher", true, "10.0.0.2", "https"},
		{"tls without proxy", "203.0.113.9:1", nil, "http", true, "203.0.113.9", "https"},
		{"ipv4-mapped peer", "[::ffff:10.0.0.2]:1", []string{"198.51.100.7"}, "", false, "198.51.100.7", "http"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/catalog", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if tc.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			ip, scheme := proxy.ResolveClient(trusted, r)
			require.Equal(t, tc.wantIP, ip.String())
			require.Equal(t, tc.wantScheme, scheme)
			if tc.name == "untrusted peer: headers ignored" {
				require.Empty(t, r.Header.Get("X-Forwarded-For"), "deleted so nothing downstream believes it")
			}
		})
	}
}

func TestTokenInURLRefused(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	for _, q := range []string{"access_token=x", "a=1&access_token=", "ACCESS_TOKEN=x", "access%5Ftoken=x", "access_token"} {
		t.Run(q, func(t *testing.T) {
			// Before authentication: with no key, with a valid key, on any route.
			h.expect(h.do("GET", "/v1/connections?"+q, "", nil), 400, "token_in_url")
			h.expect(h.do("GET", "/v1/connections?"+q, bootstrapKey, nil), 400, "token_in_url")
			h.expect(h.do("GET", "/healthz?"+q, "", nil), 400, "token_in_url")
		})
	}
	h.expect(h.do("GET", "/v1/connections?my_access_token_count=1", bootstrapKey, nil), 200, "")
}

func TestRateLimits(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	reader := h.createKey("tokens:read")
	other := h.createKey("tokens:read")

	t.Run("per key", func(t *testing.T) {
		srv := edgeServer(t, h, proxy.EdgeConfig{PerKey: ratelimit.Limit{Rate: 0.01, Burst: 3}})
		for i := 0; i < 3; i++ {
			res, _ := send(t, srv.URL, "GET", "/v1/connections", bearerHdr(reader), nil)
			require.Equal(t, 200, res.StatusCode)
		}
		res, body := send(t, srv.URL, "GET", "/v1/connections", bearerHdr(reader), nil)
		require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
		require.Contains(t, string(body), `"code":"rate_limited"`)
		// The detail names the limit and the setting that changes it, never the key.
		require.Contains(t, string(body),
			`"detail":"per-key limit 0.6/m, burst 3 exceeded for this API key; raise AUTHPIPE_RATE_LIMIT_PER_KEY"`)
		require.NotContains(t, string(body), reader)
		require.NotContains(t, string(body), "apk_")
		ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
		require.NoError(t, err)
		require.Greater(t, ra, 60, "one token per 100 s")
		// Another key has its own bucket.
		res, _ = send(t, srv.URL, "GET", "/v1/connections", bearerHdr(other), nil)
		require.Equal(t, 200, res.StatusCode)
		_, body = send(t, srv.URL, "GET", "/metrics", nil, nil)
		require.Contains(t, string(body), `authpipe_rate_limit_refusals_total{limit="per_key"} 1`)
		require.Contains(t, string(body), `authpipe_rate_limit_refusals_total{limit="per_ip"} 0`)
	})

	t.Run("per IP on failed authentication, untrusted X-Forwarded-For", func(t *testing.T) {
		srv := edgeServer(t, h, proxy.EdgeConfig{PerIP: ratelimit.Limit{Rate: 0.01, Burst: 2}})
		bad := "ap_wrongwrongwrongwrongwrongwrongwrongwrong"
		for i := 0; i < 2; i++ {
			res, _ := send(t, srv.URL, "GET", "/v1/connections", bearerHdr(bad, "X-Forwarded-For", "198.51.100."+strconv.Itoa(i)), nil)
			require.Equal(t, 401, res.StatusCode)
		}
		// Rotating X-Forwarded-For from an untrusted peer buys nothing.
		res, body := send(t, srv.URL, "GET", "/v1/connections", bearerHdr(bad, "X-Forwarded-For", "198.51.100.99"), nil)
		require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
		require.NotEmpty(t, res.Header.Get("Retry-After"))
		require.Contains(t, string(body), `"detail":"too many failed authentications from this client address `+
			`(per-IP limit 0.6/m, burst 2); raise AUTHPIPE_RATE_LIMIT_PER_IP"`)
		require.NotContains(t, string(body), "127.0.0.1")
		// Even a valid key from that address waits: the address is refused before hashing.
		res, _ = send(t, srv.URL, "GET", "/v1/connections", bearerHdr(reader), nil)
		require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
		_, body = send(t, srv.URL, "GET", "/metrics", nil, nil)
		require.Contains(t, string(body), `authpipe_rate_limit_refusals_total{limit="per_ip"} 2`)
	})

	t.Run("per IP behind a trusted proxy", func(t *testing.T) {
		srv := edgeServer(t, h, proxy.EdgeConfig{PerIP: ratelimit.Limit{Rate: 0.01, Burst: 2},
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		bad := "ap_wrongwrongwrongwrongwrongwrongwrongwrong"
		for i := 0; i < 2; i++ {
			res, _ := send(t, srv.URL, "GET", "/v1/connections", bearerHdr(bad, "X-Forwarded-For", "198.51.100.1"), nil)
			require.Equal(t, 401, res.StatusCode)
		}
		res, _ := send(t, srv.URL, "GET", "/v1/connections", bearerHdr(bad, "X-Forwarded-For", "198.51.100.1"), nil)
		require.Equal(t, http.StatusTooManyRequests, res.StatusCode, "the client behind the proxy is limited")
		// Another client behind the same proxy has its own bucket, and a valid key works.
		res, _ = send(t, srv.URL, "GET", "/v1/connections", bearerHdr(reader, "X-Forwarded-For", "198.51.100.2"), nil)
		require.Equal(t, 200, res.StatusCode)
		// A spoofed left-hand entry does not change who the client is.
		res, _ = send(t, srv.URL, "GET", "/v1/connections", bearerHdr(bad, "X-Forwarded-For", "203.0.113.5, 198.51.100.1"), nil)
		require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	})

	// An IPv6 host holds a whole /64: walking through its addresses buys nothing, the next
	// /64 is another client, and an IPv4-mapped address is the IPv4 client.
	t.Run("per IP: IPv6 by /64, IPv4-mapped as IPv4", func(t *testing.T) {
		srv := edgeServer(t, h, proxy.EdgeConfig{PerIP: ratelimit.Limit{Rate: 0.01, Burst: 2},
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		callback := func(client string) int {
			res, _ := send(t, srv.URL, "GET", "/v1/oauth/callback?state=unknown&code=x",
				http.Header{"X-Forwarded-For": {client}}, nil)
			return res.StatusCode
		}
		for i := 1; i <= 2; i++ {
			require.NotEqual(t, http.StatusTooManyRequests, callback("2001:db8:1:2::"+strconv.Itoa(i)))
		}
		require.Equal(t, http.StatusTooManyRequests, callback("2001:db8:1:2:ffff:ffff:ffff:ffff"), "same /64")
		res, body := send(t, srv.URL, "GET", "/v1/oauth/callback?state=unknown&code=x",
			http.Header{"X-Forwarded-For": {"2001:db8:1:2::9"}}, nil)
		require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
		require.Contains(t, string(body),
			`"detail":"per-IP limit 0.6/m, burst 2 exceeded for this client address; raise AUTHPIPE_RATE_LIMIT_PER_IP"`)
		require.NotContains(t, string(body), "2001:db8")
		require.NotEqual(t, http.StatusTooManyRequests, callback("2001:db8:1:3::1"), "the next /64")

		require.NotEqual(t, http.StatusTooManyRequests, callback("198.51.100.20"))
		require.NotEqual(t, http.StatusTooManyRequests, callback("::ffff:198.51.100.20"))
		require.Equal(t, http.StatusTooManyRequests, callback("198.51.100.20"), "mapped and plain are one client")
		require.NotEqual(t, http.StatusTooManyRequests, callback("198.51.100.21"), "IPv4 by /32")
	})

	t.Run("unauthenticated routes per IP", func(t *testing.T) {
		srv := edgeServer(t, h, proxy.EdgeConfig{PerIP: ratelimit.Limit{Rate: 0.01, Burst: 2}})
		codes := []int{}
		for i := 0; i < 3; i++ {
			res, _ := send(t, srv.URL, "GET", "/v1/oauth/callback?state=unknown&code=x", nil, nil)
			codes = append(codes, res.StatusCode)
		}
		require.NotEqual(t, http.StatusTooManyRequests, codes[0])
		require.Equal(t, http.StatusTooManyRequests, codes[2], "codes: %v", codes)
	})
}

func TestDPoPBoundKeyEndToEnd(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	k := dpoptest.NewKey(t, jose.ES256)
	h.expect(h.do("POST", "/v1/api-keys", bootstrapKey, map[string]any{"name": "d", "scopes": []string{"tokens:read"},
		"dpop_jkt": "not-a-thumbprint"}), 400, "invalid_request")
	created := h.expect(h.do("POST", "/v1/api-keys", bootstrapKey, map[string]any{"name": "d", "scopes": []string{"tokens:read"},
		"dpop_jkt": k.JKT}), 201, "")
	key := created.Body["key"].(string)
	// The harness's public URL is the default, http://127.0.0.1:8080.
	const htu = "http://127.0.0.1:8080/v1/connections"

	call := func(scheme string, proof string) (*http.Response, []byte) {
		hdr := http.Header{"Authorization": {scheme + " " + key}}
		if proof != "" {
			hdr.Set("DPoP", proof)
		}
		return send(t, h.srv.URL, "GET", "/v1/connections", hdr, nil)
	}
	res, body := call("DPoP", k.Proof(t, claimsNow("GET", htu, key), nil))
	require.Equal(t, 200, res.StatusCode, "body: %s", body)
	res, body = call("Bearer", k.Proof(t, claimsNow("GET", htu, key), nil))
	require.Equal(t, 200, res.StatusCode, "body: %s", body)

	refused := map[string]string{
		"no proof":    "",
		"wrong htm":   k.Proof(t, claimsNow("POST", htu, key), nil),
		"wrong htu":   k.Proof(t, claimsNow("GET", "http://127.0.0.1:8080/v1/catalog", key), nil),
		"wrong key":   dpoptest.NewKey(t, jose.ES256).Proof(t, claimsNow("GET", htu, key), nil),
		"no ath":      k.Proof(t, withoutClaim(claimsNow("GET", htu, key), "ath"), nil),
		"garbage jws": "eyJ.eyJ.sig",
	}
	for name, proof := range refused {
		t.Run(name, func(t *testing.T) {
			res, body := call("DPoP", proof)
			require.Equal(t, 401, res.StatusCode, "body: %s", body)
			require.Contains(t, string(body), `"code":"invalid_dpop_proof"`)
			require.Contains(t, res.Header.Get("WWW-Authenticate"), `DPoP error="invalid_dpop_proof"`)
			require.NotContains(t, string(body), key)
		})
	}
	t.Run("replayed", func(t *testing.T) {
		p := k.Proof(t, claimsNow("GET", htu, key), nil)
		res, _ := call("DPoP", p)
		require.Equal(t, 200, res.StatusCode)
		res, body := call("DPoP", p)
		require.Equal(t, 401, res.StatusCode, "body: %s", body)
	})
	// Unbound keys are untouched by DPoP.
	h.expect(h.do("GET", "/v1/connections", h.createKey("tokens:read"), nil), 200, "")
}

func claimsNow(method, htu, key string) map[string]any {
	return dpoptest.Claims(method, htu, key, time.Now())
}

func withoutClaim(c map[string]any, name string) map[string]any {
	delete(c, name)
	return c
}

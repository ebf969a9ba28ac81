package proxy_test

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
	"github.com/authpipe/authpipe-proxy/proxy"
)

// TestForwardClientHonoursProviderTLS: the forwarding proxy reaches a provider with its
// TLS floor and pins; a wrong pin is refused before anything is sent.
func TestForwardClientHonoursProviderTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "provider CA")
	leaf, stranger := ca.Server(t), ca.Server(t)
	var hits atomic.Int32
	serve := func(maxVersion uint16) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return &tls.Config{MaxVersion: maxVersion, Certificates: []tls.Certificate{leaf.TLS}}, nil
		}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL
	}
	modern, legacy := serve(0), serve(tls.VersionTLS12)
	clients, err := outbound.NewClients(outbound.Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		RootCAs: ca.Pool(), MaxResponseBytes: outbound.NoResponseLimit})
	require.NoError(t, err)

	tests := []struct {
		name    string
		minTLS  string
		pins    []string
		url     string
		ok      bool
		pinFail bool
	}{
		{"TLS 1.3 provider", "", nil, modern, true, false},
		{"TLS 1.2-only provider refused by default", "", nil, legacy, false, false},
		{"min_tls_version 1.2", "1.2", nil, legacy, true, false},
		{"wrong pin", "", []string{stranger.Pin()}, modern, false, true},
		{"rotation: old and new pins", "", []string{stranger.Pin(), leaf.Pin()}, modern, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			hc, err := proxy.ForwardClientFor(clients, tc.minTLS, tc.pins)
			require.NoError(t, err)
			resp, err := hc.Get(tc.url)
			if tc.ok {
				require.NoError(t, err)
				_ = resp.Body.Close()
				require.Equal(t, before+1, hits.Load())
				return
			}
			require.Error(t, err)
			require.Equal(t, before, hits.Load(), "nothing reached the provider")
			if tc.pinFail {
				require.ErrorIs(t, err, outbound.ErrPinMismatch)
			}
		})
	}
	_, err = proxy.ForwardClientFor(clients, "1.0", nil)
	require.Error(t, err)
}

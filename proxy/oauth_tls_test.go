package proxy_test

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/proxy"
)

// TestTokenClientHonoursProviderTLS checks that the connect flows' provider client
// follows the provider's min_tls_version and pins, even when a default client was set.
func TestTokenClientHonoursProviderTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "provider CA")
	leaf, stranger := ca.Server(t), ca.Server(t)
	serve := func(maxVersion uint16) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return &tls.Config{MaxVersion: maxVersion, Certificates: []tls.Certificate{leaf.TLS}}, nil
		}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL
	}
	modern, legacy := serve(0), serve(tls.VersionTLS12)

	base := outbound.Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, RootCAs: ca.Pool()}
	clients, err := outbound.NewClients(base)
	require.NoError(t, err)
	def, err := outbound.New(base)
	require.NoError(t, err)

	tests := []struct {
		name    string
		prov    oauthflow.Provider
		url     string
		wantErr error // nil: success; outbound.ErrPinMismatch; or errAny
	}{
		{"default client, TLS 1.3", oauthflow.Provider{Name: "a"}, modern, nil},
		{"TLS 1.2-only provider refused by default", oauthflow.Provider{Name: "a"}, legacy, errAny},
		{"min_tls_version 1.2 reaches it", oauthflow.Provider{Name: "a", MinTLSVersion: "1.2"}, legacy, nil},
		{"wrong pin refused", oauthflow.Provider{Name: "a", Pins: []string{stranger.Pin()}}, modern, outbound.ErrPinMismatch},
		{"old and new pin", oauthflow.Provider{Name: "a", Pins: []string{stranger.Pin(), leaf.Pin()}}, modern, nil},
		{"1.2 with a wrong pin still refused", oauthflow.Provider{Name: "a", MinTLSVersion: "1.2", Pins: []string{stranger.Pin()}}, legacy, outbound.ErrPinMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hc, err := proxy.TokenClientFor(clients, def, tc.prov)
			require.NoError(t, err)
			resp, err := hc.Get(tc.url)
			switch tc.wantErr {
			case nil:
				require.NoError(t, err)
				_ = resp.Body.Close()
			case errAny:
				require.Error(t, err)
			default:
				require.ErrorIs(t, err, tc.wantErr)
			}
		})
	}
}

// errAny marks a case that must fail without a specific sentinel.
var errAny = &struct{ error }{}

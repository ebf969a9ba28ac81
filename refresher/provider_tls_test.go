package refresher

import (
	"context"
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
	"github.com/authpipe/authpipe-proxy/vault"
)

// TestProbeHonoursProviderPins: with WithProviderClient the health probe reaches a
// provider only through its pins, and a wrong pin fails without any unpinned retry.
func TestProbeHonoursProviderPins(t *testing.T) {
	ca := tlstest.NewCA(t, "provider CA")
	leaf, stranger := ca.Server(t), ca.Server(t)
	var hits int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits++ }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}, nil
	}}
	srv.StartTLS()
	defer srv.Close()

	clients, err := outbound.NewClients(outbound.Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		RootCAs: ca.Pool()})
	require.NoError(t, err)
	r := &Refresher{http: http.DefaultClient, limits: newHostLimits(4)} // DefaultClient would not trust the CA
	WithProviderClient(func(p oauthflow.Provider) (*http.Client, error) {
		c, err := clients.For(p.MinTLSVersion, p.Pins)
		if err != nil {
			return nil, err
		}
		return c.TokenClient(), nil
	})(r)

	p := oauthflow.Provider{Name: "acme", HealthCheckURL: srv.URL + "/ok", APIKeyHeader: "X-Key", APIKeyFormat: "{key}"}
	key := vault.NewSecret("k")
	tests := []struct {
		name string
		pins []string
		err  error
	}{
		{"no pins", nil, nil},
		{"right pin", []string{leaf.Pin()}, nil},
		{"wrong pin", []string{stranger.Pin()}, outbound.ErrPinMismatch},
		{"malformed pin", []string{"sha256/x"}, errMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := hits
			p.Pins = tc.pins
			status, err := r.probe(context.Background(), p, oauthflow.AuthModeAPIKey, key)
			switch tc.err {
			case nil:
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, status)
				require.Equal(t, before+1, hits)
			case errMalformed:
				require.Error(t, err)
				require.Equal(t, before, hits)
			default:
				require.ErrorIs(t, err, tc.err)
				require.Equal(t, before, hits, "never sent without the pin")
			}
		})
	}
}

var errMalformed = &struct{ error }{}

package proxy

import (
	"log/slog"
	"net/http"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// TokenClientFor returns the connect flows' client for p on a bare server with the given
// per-provider clients and default client (oauth_tls_test.go).
func TokenClientFor(clients *outbound.Clients, def *outbound.Client, p oauthflow.Provider) (*http.Client, error) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	WithProviderClients(clients)(s)
	if def != nil {
		WithTokenOutbound(def)(s)
	}
	s.oauth.log = s.log
	return s.oauth.tokenClient(p)
}

// ForwardClientFor returns the forwarding proxy's client for a provider's TLS settings on
// a bare server with the given per-provider clients (forward_tls_test.go).
func ForwardClientFor(clients *outbound.Clients, minTLSVersion string, pins []string) (*http.Client, error) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	WithForwardClients(clients)(s)
	return s.forwardClient(minTLSVersion, pins)
}

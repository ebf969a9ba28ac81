package proxy

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// providerClients are the outbound clients for the connect flows' provider calls, built
// on first use unless an option set them.
type providerClients struct {
	allow []netip.Prefix // Config.OutboundAllowCIDRs
	log   *slog.Logger

	once    sync.Once
	client  *outbound.Client  // WithTokenOutbound
	clients *outbound.Clients // WithProviderClients
	err     error
}

// WithTokenOutbound sets the SSRF-guarded client used for every provider call of the connect
// flows whose provider has neither pins nor min_tls_version "1.2". Default: the
// WithProviderClients client for such a provider.
func WithTokenOutbound(c *outbound.Client) Option { return func(s *Server) { s.oauth.client = c } }

// WithProviderClients sets the per-provider clients (outbound.Clients: TLS 1.3 unless the
// provider says min_tls_version "1.2", and its pins). Default: built from
// Config.OutboundAllowCIDRs with the system roots.
func WithProviderClients(c *outbound.Clients) Option { return func(s *Server) { s.oauth.clients = c } }

// tokenClient is the outbound client for provider p that never follows a redirect and
// refuses private addresses at dial time (unless the operator allowed them). It honours
// p's TLS floor and pins; a pin mismatch fails (outbound.ErrPinMismatch) and is never
// retried with another client.
func (pc *providerClients) tokenClient(p oauthflow.Provider) (*http.Client, error) {
	pc.once.Do(func() {
		if pc.clients == nil {
			pc.clients, pc.err = outbound.NewClients(outbound.Policy{AllowCIDRs: pc.allow}, outbound.WithLogger(pc.log))
		}
	})
	if pc.err != nil {
		return nil, fmt.Errorf("proxy: outbound client: %w", pc.err)
	}
	if pc.client != nil && len(p.Pins) == 0 && p.MinTLSVersion != "1.2" {
		return pc.client.TokenClient(), nil
	}
	c, err := pc.clients.For(p.MinTLSVersion, p.Pins)
	if err != nil {
		return nil, fmt.Errorf("proxy: outbound client for provider %s: %w", p.Name, err)
	}
	return c.TokenClient(), nil
}

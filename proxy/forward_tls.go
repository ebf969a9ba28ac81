package proxy

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
)

// forwardTLS holds the forwarding proxy's per-provider clients (docs/security.md).
type forwardTLS struct {
	once    sync.Once
	clients *outbound.Clients
	err     error
}

// WithForwardClients sets the forwarding proxy's per-provider clients: each provider is
// reached with its min_tls_version and pins over the clients' base policy (build it with
// outbound.NoResponseLimit: forwards stream). Default: the WithOutbound client for
// providers without pins, and clients built from Config.OutboundAllowCIDRs for pinned ones.
func WithForwardClients(c *outbound.Clients) Option { return func(s *Server) { s.fwdTLS.clients = c } }

// forwardClient is the client that forwards to a provider with this TLS floor and these
// pins. A pinned provider always gets a pinned client: a pin mismatch fails the request
// (502) and is never retried without the pins.
func (s *Server) forwardClient(minTLSVersion string, pins []string) (*http.Client, error) {
	if s.fwdTLS.clients == nil && len(pins) == 0 {
		if minTLSVersion == "1.2" {
			return s.fwd.client12, nil
		}
		return s.fwd.client, nil
	}
	s.fwdTLS.once.Do(func() {
		if s.fwdTLS.clients == nil {
			s.fwdTLS.clients, s.fwdTLS.err = outbound.NewClients(outbound.Policy{AllowCIDRs: s.cfg.OutboundAllowCIDRs,
				MaxResponseBytes: outbound.NoResponseLimit, Timeouts: outbound.Timeouts{Overall: forwardDefaultBudget}},
				outbound.WithLogger(s.log))
		}
	})
	if s.fwdTLS.err != nil {
		return nil, fmt.Errorf("proxy: forward clients: %w", s.fwdTLS.err)
	}
	c, err := s.fwdTLS.clients.For(minTLSVersion, pins)
	if err != nil {
		return nil, fmt.Errorf("proxy: forward client: %w", err)
	}
	return c.ForwardClient(), nil
}

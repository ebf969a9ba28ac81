package proxy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
)

// oauthDeps is the connect flows' share of the Server (handlers_connect.go): the outbound
// clients for provider calls, built on first use unless an option set them.
type oauthDeps struct {
	once    sync.Once
	client  *outbound.Client // WithTokenOutbound
	clients *tlsutil.Clients // WithProviderClients
	err     error
}

// WithTokenOutbound sets the SSRF-guarded client used for every provider call of the connect
// flows (token exchange; later refresh and revoke) whose provider has neither pins nor
// min_tls_version "1.2". Default: the WithProviderClients client for such a provider.
func WithTokenOutbound(c *outbound.Client) Option { return func(s *Server) { s.oauth.client = c } }

// WithProviderClients sets the per-provider clients (tlsutil.Clients: TLS 1.3 unless the
// provider says min_tls_version "1.2", and its pins). Default: built from
// Config.OutboundAllowCIDRs with the system roots.
func WithProviderClients(c *tlsutil.Clients) Option { return func(s *Server) { s.oauth.clients = c } }

// tokenClient is the outbound client for provider p that never follows a redirect and
// refuses private addresses at dial time (unless the operator allowed them). It honours
// p's TLS floor and pins; a pin mismatch fails (outbound.ErrPinMismatch) and is never
// retried with another client.
func (s *Server) tokenClient(p oauthflow.Provider) (*http.Client, error) {
	s.oauth.once.Do(func() {
		if s.oauth.clients == nil {
			s.oauth.clients, s.oauth.err = tlsutil.NewClients(outbound.Policy{AllowCIDRs: s.cfg.OutboundAllowCIDRs},
				outbound.WithLogger(s.log))
		}
	})
	if s.oauth.err != nil {
		return nil, fmt.Errorf("proxy: outbound client: %w", s.oauth.err)
	}
	if s.oauth.client != nil && len(p.Pins) == 0 && p.MinTLSVersion != "1.2" {
		return s.oauth.client.TokenClient(), nil
	}
	c, err := s.oauth.clients.For(p.MinTLSVersion, p.Pins)
	if err != nil {
		return nil, fmt.Errorf("proxy: outbound client for provider %s: %w", p.Name, err)
	}
	return c.TokenClient(), nil
}

// flowKeyLabel derives the browser-binding key from the proxy's API-key hashing key
// (HMAC as a PRF with a label of its own): every replica derives the same key, it is
// never stored, and it is sealed at rest as that key is.
const flowKeyLabel = "authpipe-proxy/v1 derive: connect-flow browser binding key"

// flowKey returns the HMAC key of the connect flows' browser binding.
func (s *Server) flowKey(ctx context.Context) ([]byte, error) {
	k, _, err := s.hasher.Hash(ctx, vault.NewSecret(flowKeyLabel))
	if err != nil {
		return nil, fmt.Errorf("proxy: browser binding key: %w", err)
	}
	return k, nil
}

// The flow cookie carries the browser nonce of the connect flows. With an https public
// URL it is "__Host-authpipe_flow": Secure, HttpOnly, SameSite=Lax, Path=/ and no Domain,
// so no other host or plain-http page can set or read it. The __Host- prefix requires
// Secure, and browsers drop Secure cookies set over plain http; so when the public URL
// is plain http (which only the dev profile allows, for localhost/127.0.0.1), the cookie
// is "authpipe_flow" without the prefix and without Secure (docs/oauth.md).
const (
	flowCookieSecure = "__Host-authpipe_flow"
	flowCookieDev    = "authpipe_flow"
)

func (s *Server) flowCookieName() (name string, secure bool) {
	if strings.HasPrefix(s.cfg.PublicURL, "https://") {
		return flowCookieSecure, true
	}
	return flowCookieDev, false
}

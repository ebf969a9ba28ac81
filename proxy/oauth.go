package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil"
	"github.com/authpipe/authpipe-proxy/oauthflow"
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

// The connect flows' browser binding (oauthflow.BindingMAC) is made with the active key
// of the state key set (keyset.go) and stored with that key's id: kid ‖ ":" ‖ MAC. The
// callback picks the key by that kid only, so a flow started before a state-key rotation
// completes after it (the old key is verify-only for the flow lifetime), and a binding
// made with a retired or unknown key is refused.
const flowBindingSep = ':'

// flowBinding returns the stored binding of session sessionID to the browser nonce.
func (s *Server) flowBinding(ctx context.Context, sessionID, nonce string) ([]byte, error) {
	k, err := s.stateKeys.active(ctx)
	if err != nil {
		return nil, fmt.Errorf("proxy: browser binding key: %w", err)
	}
	mac := oauthflow.BindingMAC(k.material, sessionID, nonce)
	out := make([]byte, 0, len(k.kid)+1+len(mac))
	out = append(append(append(out, k.kid...), flowBindingSep), mac...)
	return out, nil
}

// verifyFlowBinding reports whether stored binds sessionID to nonce, under the key its
// kid names (constant-time comparison in oauthflow.VerifyBinding).
func (s *Server) verifyFlowBinding(ctx context.Context, sessionID, nonce string, stored []byte) (bool, error) {
	if len(stored) == sha256.Size { // made before key ids: derived from the first API-key hashing key
		return s.verifyLegacyFlowBinding(ctx, sessionID, nonce, stored)
	}
	i := bytes.IndexByte(stored, flowBindingSep)
	if i <= 0 {
		return false, nil
	}
	k, err := s.stateKeys.byKid(ctx, string(stored[:i]))
	if err != nil {
		return false, fmt.Errorf("proxy: browser binding key: %w", err)
	}
	if k == nil { // retired or unknown: no other key is tried
		return false, nil
	}
	return oauthflow.VerifyBinding(k.material, sessionID, nonce, stored[i+1:]), nil
}

// legacyFlowKeyLabel derived the browser-binding key from the API-key hashing key before
// the state key set existed; flows started then (at most SessionLifetime before an
// upgrade) still complete.
const legacyFlowKeyLabel = "authpipe-proxy/v1 derive: connect-flow browser binding key"

func (s *Server) verifyLegacyFlowBinding(ctx context.Context, sessionID, nonce string, stored []byte) (bool, error) {
	k, err := s.hasher.keys.byKid(ctx, hashKeyID)
	if err != nil {
		return false, fmt.Errorf("proxy: browser binding key: %w", err)
	}
	if k == nil {
		return false, nil
	}
	return oauthflow.VerifyBinding(k.mac([]byte(legacyFlowKeyLabel)), sessionID, nonce, stored), nil
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

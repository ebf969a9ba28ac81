package proxy

import (
	"crypto/x509"
	"net/http"
	"slices"
	"strings"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// ClientCertKeyURIPrefix starts the URI SAN that binds a client certificate to an API
// key: "authpipe:apikey:<key id>" (the id the API returns when the key is created, e.g.
// apk_…). A certificate may name several keys (one per URI SAN).
const ClientCertKeyURIPrefix = "authpipe:apikey:"

// WithClientCertBinding turns on mutual-TLS binding of API keys (set when
// AUTHPIPE_TLS_CLIENT_CA_FILE is): every request authenticated by an API key must also
// come over a TLS connection whose client certificate chained to the configured client
// CA (verified by the TLS layer) and names that key in a URI SAN
// ClientCertKeyURIPrefix + key id. The certificate is a second factor, never a
// replacement: the key is still required, so a stolen key without its certificate, or a
// certificate without the key, gets 401 (the same 401 as an unknown key).
//
// Routes without an API key (health, readiness, the browser's connect page and OAuth
// callback) need no certificate. TLS must end at the proxy: behind a TLS-terminating
// load balancer no request carries a verified certificate and every API-key request is
// refused.
func WithClientCertBinding(enabled bool) Option {
	return func(s *Server) { s.clientCertBinding = enabled }
}

// ClientCertKeyIDs returns the API key ids that cert is bound to, in SAN order.
func ClientCertKeyIDs(cert *x509.Certificate) []string {
	var out []string
	for _, u := range cert.URIs {
		if id, ok := strings.CutPrefix(u.String(), ClientCertKeyURIPrefix); ok && id != "" {
			out = append(out, id)
		}
	}
	return out
}

// checkClientCert enforces WithClientCertBinding for an authenticated principal. Only
// VerifiedChains counts: crypto/tls fills it only after verifying the chain against the
// client CA, where PeerCertificates would hold whatever the client sent.
func (s *Server) checkClientCert(r *http.Request, p admin.Principal) error {
	if !s.clientCertBinding {
		return nil
	}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		s.log.Debug("API key without a verified client certificate", "key_id", p.KeyID)
		return problem.ErrUnauthorized
	}
	if !slices.Contains(ClientCertKeyIDs(r.TLS.VerifiedChains[0][0]), p.KeyID) {
		s.log.Debug("client certificate does not name the API key", "key_id", p.KeyID)
		return problem.ErrUnauthorized
	}
	return nil
}

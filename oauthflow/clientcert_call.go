package oauthflow

import (
	"fmt"
	"net/http"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
)

// tokenHTTPClient is the one place that picks the HTTP client of a token call: hc, or for
// tls_client_auth (RFC 8705 section 2.1) hc presenting the client's certificate, parsed
// from its client secret (the PEM bundle) and valid at now. Every token-endpoint call
// (exchange, refresh, the minted grants) goes through tokenCall and so through here.
func tokenHTTPClient(hc *http.Client, p Provider, client ClientCredentials, now time.Time) (*http.Client, error) {
	if p.TokenAuthMethod != TLSClientAuth {
		return hc, nil
	}
	if client.ClientSecret.IsZero() {
		return nil, &CertificateError{err: certErr("no client certificate is set")}
	}
	cert, err := ParseClientCertificate(client.ClientSecret)
	if err == nil {
		err = cert.ValidAt(now)
	}
	if err != nil {
		return nil, &CertificateError{err: err}
	}
	out, err := outbound.WithClientCertificate(hc, cert.TLS())
	if err != nil {
		return nil, fmt.Errorf("oauthflow: %q: %w", p.Name, err)
	}
	return out, nil
}

// CertificateError: the tls_client_auth certificate of a token call cannot be used
// (unset, malformed or outside its validity), so no request was sent. It is the client
// failing to authenticate, as the server would have said: errors.As finds a
// *ProviderError with code invalid_client (status 0: nothing was sent) in it, so a
// certificate rotation's next certificate is tried (withNextSecret), a connection's
// mint fails like any refused client (needs_reauth, or 400 invalid_credential at
// creation), and its text says what is wrong with the certificate (ErrClientCertificate).
type CertificateError struct{ err error }

func (e *CertificateError) Error() string { return e.err.Error() }

// Unwrap keeps ErrClientCertificate in the chain.
func (e *CertificateError) Unwrap() error { return e.err }

// As lets errors.As see the invalid_client refusal this stands for.
func (e *CertificateError) As(target any) bool {
	if pe, ok := target.(**ProviderError); ok {
		*pe = &ProviderError{Op: "token", Code: "invalid_client"}
		return true
	}
	return false
}

var _ interface{ As(any) bool } = (*CertificateError)(nil)

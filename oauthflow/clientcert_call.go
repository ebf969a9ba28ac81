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
// (unset, malformed or outside its validity), so no request was sent. Like a private key
// that cannot sign, it is ErrInvalidKey (and ErrClientCertificate, whose text says what is
// wrong with the certificate, never what it holds): 400 invalid_request when a connection
// is created with it, needs_reauth (invalid_credential) when a mint meets it later. A
// rotation's next certificate is tried in its place (withNextSecret).
type CertificateError struct{ err error }

func (e *CertificateError) Error() string { return e.err.Error() }

// Unwrap makes errors.Is see ErrClientCertificate and ErrInvalidKey.
func (e *CertificateError) Unwrap() []error { return []error{e.err, ErrInvalidKey} }

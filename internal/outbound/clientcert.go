package outbound

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
)

// ErrNoClientCertTransport: WithClientCertificate was given a client whose transport it
// cannot extend (neither this package's nor a plain *http.Transport).
var ErrNoClientCertTransport = errors.New("outbound: this client cannot present a client certificate")

// WithClientCertificate returns a client like hc (a TokenClient: same redirect rule and
// timeout) whose TLS handshakes present cert (mutual TLS, RFC 8705 section 2): for one
// token call. Everything else of hc's transport stays: the dial-time address checks, the
// minimum TLS version, the root CAs, the pins and the body cap. The transport is a copy
// of hc's with keep-alives off, so that no connection that carried this certificate is
// pooled, reused by a call with another certificate or none, or outlives the call.
// The certificate is presented whenever the server asks for one (whatever CA names it
// lists), so a wrong certificate is the server's refusal, not a silent omission. Plain
// http is refused: a certificate needs TLS.
//
// hc's transport must be this package's (Client.TokenClient) or, in tests, a plain
// *http.Transport; anything else is ErrNoClientCertTransport.
func WithClientCertificate(hc *http.Client, cert tls.Certificate) (*http.Client, error) {
	if hc == nil {
		return nil, ErrNoClientCertTransport
	}
	if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return nil, fmt.Errorf("outbound: WithClientCertificate: empty certificate")
	}
	var (
		base *http.Transport
		wrap func(*http.Transport) http.RoundTripper
	)
	switch t := hc.Transport.(type) {
	case *capTransport:
		base = t.base
		wrap = func(b *http.Transport) http.RoundTripper {
			return &capTransport{base: b, max: t.max, httpsOnly: true, report: t.report}
		}
	case *http.Transport:
		base = t
		wrap = func(b *http.Transport) http.RoundTripper { return httpsOnly{b} }
	default:
		return nil, ErrNoClientCertTransport
	}
	tr := base.Clone() // TLSClientConfig is cloned too: hc's stays as it is
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS13}
	}
	tr.TLSClientConfig.Certificates = nil
	tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &cert, nil
	}
	tr.TLSClientConfig.ClientSessionCache = nil // no resumption: every handshake is a fresh one
	tr.DisableKeepAlives = true
	out := *hc
	out.Transport = wrap(tr)
	return &out, nil
}

// httpsOnly refuses plain http (a plain *http.Transport given to WithClientCertificate).
type httpsOnly struct{ base *http.Transport }

func (t httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		closeBody(req)
		return nil, fmt.Errorf("%w: a client certificate needs https", ErrUnsafeURL)
	}
	return t.base.RoundTrip(req)
}

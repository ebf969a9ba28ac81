package oauthflow

import (
	"bytes"
	"fmt"
	"net/url"
	"time"

	"github.com/authpipe/authpipe-proxy/vault"
)

// Client authentication at the provider's endpoints (RFC 6749 section 2.3): the one home
// for how a client proves itself, used by the token call (token_request.go: the code
// exchange, the refresh grant, every mint) and by revocation (revoke.go), which RFC 7009
// section 2.1 says authenticates as at the token endpoint.
//
//   - client_secret_basic (the default): HTTP Basic with the form-encoded id and secret;
//     a client without a secret sends its client_id in the body instead.
//   - client_secret_post: client_id and client_secret in the body.
//   - private_key_jwt (RFC 7523 section 2.2): client_id and a client assertion signed by the
//     client's key for this endpoint (aud: assertion_audience or the endpoint URL); the
//     key is never sent.
//   - tls_client_auth (RFC 8705 section 2.1): client_id in the body; the certificate, on the
//     connection (tokenHTTPClient), authenticates; its PEM bundle is never sent.
//   - none: nothing (a jwt_bearer grant whose assertion is the only credential).

// clientAuth is what authenticating adds to one request: body fields, and Basic
// credentials when basic is set.
type clientAuth struct {
	fields map[string]string
	basic  bool
	id     string
	secret vault.Secret
}

// authenticate decides how client authenticates to endpoint for p.
func (p Provider) authenticate(client ClientCredentials, endpoint string, now time.Time) (clientAuth, error) {
	method := p.TokenAuthMethod
	if method == "" {
		method = ClientSecretBasic // RFC 6749 section 2.3.1: every server supports it
	}
	switch method {
	case NoClientAuth:
		return clientAuth{}, nil
	case PrivateKeyJWT:
		key, err := parseClientKey(client.ClientSecret.Bytes())
		if err != nil {
			return clientAuth{}, err
		}
		assertion, err := p.ClientAssertion(key, client.ClientID, endpoint, now)
		if err != nil {
			return clientAuth{}, err
		}
		return clientAuth{fields: map[string]string{"client_id": client.ClientID,
			"client_assertion_type": ClientAssertionType, "client_assertion": assertion}}, nil
	case TLSClientAuth:
		return clientAuth{fields: map[string]string{"client_id": client.ClientID}}, nil
	case ClientSecretBasic, ClientSecretPost:
		if isPEMPrivateKey(client.ClientSecret.Bytes()) {
			// A private key (a private_key_jwt key, a tls_client_auth bundle kept across a
			// change of token_auth_method) is never sent as a secret.
			return clientAuth{}, fmt.Errorf("%w: %q: the client secret is a PEM private key, which %s would send", ErrInvalidKey, p.Name, method)
		}
		if method == ClientSecretBasic && !client.ClientSecret.IsZero() {
			return clientAuth{basic: true, id: client.ClientID, secret: client.ClientSecret}, nil
		}
		f := map[string]string{"client_id": client.ClientID}
		if !client.ClientSecret.IsZero() {
			f["client_secret"] = client.ClientSecret.Reveal()
		}
		return clientAuth{fields: f}, nil
	}
	return clientAuth{}, fmt.Errorf("%w: %q: unknown token_auth_method", ErrInvalidProvider, p.Name)
}

// basicAuth is the Authorization header value of a Basic client authentication: RFC 6749
// section 2.3.1 form-encodes id and secret before the Basic encoding.
func (a clientAuth) basicAuth() (user, password string) {
	return url.QueryEscape(a.id), url.QueryEscape(a.secret.Reveal())
}

// isPEMPrivateKey reports whether b holds a PEM private key block (anywhere in it).
func isPEMPrivateKey(b []byte) bool {
	for {
		_, rest, ok := bytes.Cut(b, []byte("-----BEGIN "))
		if !ok {
			return false
		}
		line, _, _ := bytes.Cut(rest, []byte("-----"))
		if bytes.HasSuffix(line, []byte("PRIVATE KEY")) {
			return true
		}
		b = rest
	}
}

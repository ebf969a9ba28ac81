package oauthflow

import (
	"net/http"
	"strings"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
)

// ErrUnsendable refuses a stored credential that cannot be put in a request header (a
// CR, LF or NUL in it, or a basic credential that does not decode): nothing is sent.
var ErrUnsendable = problem.ErrBadGateway.WithDetail("the stored credential cannot be sent in a header")

// Authorize puts a connection's opened credential on r as provider p expects it. This is
// the one place a credential is injected: the forwarding proxy and the health check call
// it. An access token (oauth2 and the minted modes) is a Bearer token; a basic
// connection's username and password are HTTP Basic (RFC 7617); an API key goes in the
// configured header (APIKeyFormat with {key}), or HTTP Basic (with APIKeyBasicUsername as
// the user, or the key split at its first colon), or, with no style configured, a Bearer
// token. The caller has already dropped the inbound request's own Authorization.
func (p Provider) Authorize(r *http.Request, mode AuthMode, cred vault.Secret) error {
	if mode == AuthModeBasic {
		b, err := OpenBasic(cred)
		if err != nil {
			return ErrUnsendable
		}
		// Base64 in the header: no value of the pair can split it.
		r.SetBasicAuth(b.Username.Reveal(), b.Password.Reveal())
		return nil
	}
	key := cred.Reveal()
	if strings.ContainsAny(key, "\r\n\x00") {
		return ErrUnsendable
	}
	if mode != AuthModeAPIKey {
		r.Header.Set("Authorization", "Bearer "+key)
		return nil
	}
	switch p.APIKeyAuth {
	case APIKeyHeader:
		format := p.APIKeyFormat
		if format == "" {
			format = "{key}"
		}
		r.Header.Set(p.APIKeyHeader, strings.Replace(format, "{key}", key, 1))
	case APIKeyBasic:
		if p.APIKeyBasicUsername != "" {
			r.SetBasicAuth(p.APIKeyBasicUsername, key)
		} else {
			user, pass, _ := strings.Cut(key, ":")
			r.SetBasicAuth(user, pass)
		}
	default:
		r.Header.Set("Authorization", "Bearer "+key)
	}
	return nil
}

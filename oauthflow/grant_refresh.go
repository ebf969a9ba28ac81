package oauthflow

import (
	"context"
	"errors"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/authpipe/authpipe-proxy/internal/tracing"
	"github.com/authpipe/authpipe-proxy/vault"
)

// Refresh performs the refresh_token grant (RFC 6749 section 6) at p's refresh URL
// (RefreshTokenURL) as client, through x/oauth2 over hc (the outbound package's
// TokenClient, as for Exchange), with the token endpoint authentication set explicitly.
// The response is mapped as Exchange's (tokenOf: expires_in or the provider's
// assumed_expires_in, granted scopes). Token.RefreshToken is zero unless the provider
// rotated the refresh token (RFC 9700 section 4.14.2): a response without one, or with the
// same one, keeps the old.
//
// Failures are Exchange's: a refusal is a *ProviderError (with the response's Retry-After),
// anything else hides its text; no error carries a token, the secret or the body.
func Refresh(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, refreshToken vault.Secret, now time.Time) (Token, error) {
	ctx, span := tracing.StartClient(ctx, "oauth2.refresh", http.MethodPost, p.RefreshTokenURL())
	tok, err := refreshGrant(ctx, hc, p, client, refreshToken, now)
	tracing.EndHTTP(span, statusOf(err), err)
	return tok, err
}

func refreshGrant(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, refreshToken vault.Secret, now time.Time) (Token, error) {
	if hc == nil {
		return Token{}, errors.New("oauthflow: Refresh needs an HTTP client")
	}
	old := refreshToken.Reveal()
	return withNextSecret(client, func(client ClientCredentials) (Token, error) {
		conf, err := p.tokenConfig(client, p.RefreshTokenURL())
		if err != nil {
			return Token{}, err
		}
		tok, err := conf.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, hc), &oauth2.Token{RefreshToken: old}).Token()
		if err != nil {
			return Token{}, providerFailure("token", err)
		}
		out := tokenOf(p, tok, now)
		if tok.RefreshToken == old {
			out.RefreshToken.Wipe() // x/oauth2 carries the old one over when none came back
			out.RefreshToken = vault.Secret{}
		}
		return out, nil
	})
}

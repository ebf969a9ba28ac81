package oauthflow

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/tracing"
	"github.com/authpipe/authpipe-proxy/vault"
)

// Refresh performs the refresh_token grant (RFC 6749 section 6) at p's refresh URL
// (RefreshTokenURL) as client, with the provider's refresh_params, over hc (the outbound
// package's TokenClient, as for Exchange), with the token endpoint authentication set
// explicitly. The response is mapped as Exchange's (token_request.go: expires_in or the
// provider's assumed_expires_in, granted scopes, token_response_fields, metadata). Token.RefreshToken is zero unless the provider
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
	if _, err := p.tokenEndpoint(); err != nil {
		return Token{}, err
	}
	old := refreshToken.Reveal()
	return withNextSecret(client, func(client ClientCredentials) (Token, error) {
		out, err := tokenCall(ctx, hc, p, client, p.RefreshTokenURL(),
			map[string]string{"grant_type": "refresh_token", "refresh_token": old}, p.RefreshParams, now)
		if err != nil {
			return Token{}, err
		}
		if out.RefreshToken.Equal(refreshToken) { // constant time (secret.Equal)
			out.RefreshToken.Wipe() // the same one back: keep the old
			out.RefreshToken = vault.Secret{}
		}
		return out, nil
	})
}

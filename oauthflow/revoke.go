package oauthflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/tracing"
	"github.com/authpipe/authpipe-proxy/vault"
)

// Token revocation (RFC 7009), for the connection lifecycle (disconnect, erasure).

// TokenTypeHint is RFC 7009's token_type_hint.
type TokenTypeHint string

// Token type hints (RFC 7009 section 2.1).
const (
	HintAccessToken  TokenTypeHint = "access_token"
	HintRefreshToken TokenTypeHint = "refresh_token"
)

// ErrRevocationUnsupported: the provider has no RFC 7009 endpoint (revocation_url).
var ErrRevocationUnsupported = errors.New("oauthflow: provider has no revocation endpoint")

// maxRevokeBody caps what is read of a revocation response (only its error code is used).
const maxRevokeBody = 64 << 10

// Revoke asks the provider to revoke token (RFC 7009 section 2.1): a form-encoded POST of
// token and token_type_hint to revocation_url, with the client authenticated as at the
// token endpoint (client_auth.go: every token_auth_method, for every mode that has a
// revocation_url). A 200 means revoked, or unknown to the provider, which RFC
// 7009 section 2.2 treats the same. Anything else is a *ProviderError (503 with
// Status 503, which the caller may retry) or a transport error. hc must be the
// outbound TokenClient: a redirect is an error, never followed.
func Revoke(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, token vault.Secret, hint TokenTypeHint) error {
	ctx, span := tracing.StartClient(ctx, "oauth2.revoke", http.MethodPost, p.RevocationURL)
	err := revoke(ctx, hc, p, client, token, hint)
	tracing.EndHTTP(span, statusOf(err), err)
	return err
}

func revoke(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, token vault.Secret, hint TokenTypeHint) error {
	if hc == nil {
		return errors.New("oauthflow: Revoke needs an HTTP client")
	}
	if p.RevocationURL == "" {
		return ErrRevocationUnsupported
	}
	if token.IsZero() {
		return errors.New("oauthflow: nothing to revoke")
	}
	auth, err := p.authenticate(client, p.RevocationURL, time.Now()) // as at the token endpoint (client_auth.go)
	if err != nil {
		return err
	}
	if hc, err = tokenHTTPClient(hc, p, client, time.Now()); err != nil { // tls_client_auth's certificate
		return err
	}
	form := url.Values{"token": {token.Reveal()}}
	if hint != "" {
		form.Set("token_type_hint", string(hint))
	}
	for k, v := range auth.fields {
		form.Set(k, v)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.RevocationURL, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%w: %q: revocation_url", ErrInvalidProvider, p.Name)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if auth.basic {
		req.SetBasicAuth(auth.basicAuth())
	}
	res, err := hc.Do(req)
	if err != nil {
		return providerFailure("revoke", err)
	}
	defer res.Body.Close()
	body, rerr := outbound.ReadLimited(res.Body, maxRevokeBody)
	if res.StatusCode == http.StatusOK {
		return nil
	}
	pe := &ProviderError{Op: "revoke", Code: ProviderErrorCode, Status: res.StatusCode}
	if rerr == nil {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil {
			pe.Code = ErrorCode(e.Error)
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxRevokeBody))
	return pe
}

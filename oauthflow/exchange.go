package oauthflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/oauth2"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/tracing"
	"github.com/authpipe/authpipe-proxy/vault"
)

// ClientCredentials are an OAuth client's id and secret at one provider. The secret may
// be empty for a public client, which then authenticates with client_id alone.
type ClientCredentials struct {
	ClientID     string
	ClientSecret vault.Secret
	// SecretOrigins are the origins the client secret is bound to (nil: not bound yet).
	SecretOrigins vault.Origins
	// NextSecret is the OAuth app's next secret during a secret rotation (zero when none),
	// bound to NextSecretOrigins: a token request the provider refuses with invalid_client
	// is made once more with it (withNextSecret).
	NextSecret        vault.Secret
	NextSecretOrigins vault.Origins
}

// withNextSecret runs call with client and, when the provider answers invalid_client
// and the client has a next secret, once more with the next secret in its place (an
// OAuth app's secret rotated at the provider before the proxy was told to promote it).
// invalid_client means the request was refused before the grant was looked at, so a code
// or refresh token is still unused and may be sent again.
//
// A tls_client_auth certificate that cannot be used at all (expired, malformed:
// *CertificateError, nothing was sent) is passed over for the next one the same way.
func withNextSecret(client ClientCredentials, call func(ClientCredentials) (Token, error)) (Token, error) {
	tok, err := call(client)
	var (
		pe *ProviderError
		ce *CertificateError
	)
	refused := errors.As(err, &pe) && pe.Code == "invalid_client" || errors.As(err, &ce)
	if err == nil || client.NextSecret.IsZero() || !refused {
		return tok, err
	}
	next := client
	next.ClientSecret, next.SecretOrigins = client.NextSecret, client.NextSecretOrigins
	next.NextSecret, next.NextSecretOrigins = vault.Secret{}, nil
	return call(next)
}

// Token is a token response (RFC 6749 section 5.1) with its secrets wrapped.
type Token struct {
	AccessToken  vault.Secret
	RefreshToken vault.Secret // zero when the provider sent none
	TokenType    string
	// ExpiresAt is now + expires_in, or now + the provider's assumed_expires_in when the
	// response has no expires_in; nil when the token does not expire.
	ExpiresAt *time.Time
	// RefreshExpiresAt is now + the response's refresh_token_expires_in (or a provider's
	// variant of it, refreshExpiryFields); nil when the response has none.
	RefreshExpiresAt *time.Time
	// Scopes are the granted scopes when the response lists them (RFC 6749 section 5.1),
	// else nil: the caller keeps the requested ones.
	Scopes []string
	// Metadata are the provider's metadata_fields found in the response (nil: none).
	Metadata map[string]string
	// doc is the response document (Field); it may hold secrets and is never shown.
	doc map[string]any
}

// Field returns the token response's value at a dot-separated path (json.Number for
// numbers), for settings that read more of the response than Token has.
func (t Token) Field(path string) (any, bool) { return lookup(t.doc, path) }

// String never shows a token.
func (t Token) String() string {
	return fmt.Sprintf("Token{access_token:%t refresh_token:%t type:%q expires_at:%v scopes:%q}",
		!t.AccessToken.IsZero(), !t.RefreshToken.IsZero(), t.TokenType, t.ExpiresAt, t.Scopes)
}

// ProviderError is a provider's refusal or failure. It keeps only what is safe to show:
// an RFC 6749 error code (ErrorCode: never the provider's text) and the HTTP status. The
// response body, which can quote the request and its secrets, is dropped.
type ProviderError struct {
	Op     string // "token" or "revoke"
	Code   string // an RFC 6749 code, or ProviderErrorCode
	Status int    // HTTP status of the response
	// NoCode: the response named no error code at all (a bare 5xx, a redirect).
	NoCode bool
	// RetryAfter is the response's Retry-After header as sent ("" when absent), for the
	// caller's backoff; Error() never shows it.
	RetryAfter string
}

func (e *ProviderError) Error() string {
	return fmt.Sprintf("oauthflow: %s request refused by the provider: %s (HTTP %d)", e.Op, e.Code, e.Status)
}

// tokenEndpoint is Provider.Endpoint with client_secret_basic, the method every server
// must support (RFC 6749 section 2.3.1), for a custom provider that names none. The
// AuthStyle is always explicit: never x/oauth2's auto-detection, which retries with the
// secret in a second place.
func (p Provider) tokenEndpoint() (oauth2.Endpoint, error) {
	if p.TokenAuthMethod == "" {
		p.TokenAuthMethod = ClientSecretBasic
	}
	return p.Endpoint()
}

// Exchange trades an authorization code for tokens (RFC 6749 section 4.1.3) with the PKCE
// verifier (RFC 7636 section 4.5) and the provider's token_params, over hc
// (token_request.go). hc must be the outbound
// package's TokenClient (it follows no redirect and refuses private addresses at dial
// time). now is the clock that expires_in counts from.
//
// A refusal is a *ProviderError; a transport failure wraps the outbound error with the
// request URL's query removed (errors.Is(err, outbound.ErrUnsafeURL) still works). No
// error carries the code, verifier, secret or any part of the response body.
func Exchange(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, code, verifier, redirectURI string, now time.Time) (Token, error) {
	ctx, span := tracing.StartClient(ctx, "oauth2.exchange", http.MethodPost, p.TokenURL)
	tok, err := exchange(ctx, hc, p, client, code, verifier, redirectURI, now)
	tracing.EndHTTP(span, statusOf(err), err)
	return tok, err
}

// statusOf is the provider's HTTP status in err (a *ProviderError), for spans; 0 if none.
func statusOf(err error) int {
	if pe, ok := errors.AsType[*ProviderError](err); ok {
		return pe.Status
	}
	return 0
}

func exchange(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, code, verifier, redirectURI string, now time.Time) (Token, error) {
	if hc == nil {
		return Token{}, errors.New("oauthflow: Exchange needs an HTTP client")
	}
	if _, err := p.tokenEndpoint(); err != nil {
		return Token{}, err
	}
	if code == "" {
		return Token{}, fmt.Errorf("%w: no code", ErrMalformedCallback)
	}
	if err := ValidateVerifier(verifier); err != nil {
		return Token{}, err
	}
	return withNextSecret(client, func(client ClientCredentials) (Token, error) {
		return tokenCall(ctx, hc, p, client, p.TokenURL, map[string]string{"grant_type": "authorization_code",
			"code": code, "code_verifier": verifier, "redirect_uri": redirectURI}, p.TokenParams, now)
	})
}

// providerFailure reduces an x/oauth2 error to what may be kept. RetrieveError.Error()
// includes the response body: only its ErrorCode (filtered) and status survive.
func providerFailure(op string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		pe := &ProviderError{Op: op, Code: ErrorCode(re.ErrorCode), NoCode: re.ErrorCode == ""}
		if re.Response != nil {
			pe.Status, pe.RetryAfter = re.Response.StatusCode, re.Response.Header.Get("Retry-After")
		}
		return pe
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("oauthflow: %s request: %w", op, err)
	}
	var ue *outbound.UnsafeAddressError
	if errors.As(err, &ue) || errors.Is(err, outbound.ErrUnsafeURL) || errors.Is(err, outbound.ErrResponseTooLarge) ||
		errors.Is(err, outbound.ErrPinMismatch) {
		return fmt.Errorf("oauthflow: %s request: %w", op, outbound.Redact(err))
	}
	// Anything else (malformed JSON, missing access_token, a reset connection): keep the
	// class, not the text, which x/oauth2 may build from the response.
	return fmt.Errorf("oauthflow: %s request failed: %w", op, &opaqueError{err: err})
}

// opaqueError hides its cause's text but keeps it for errors.Is/As.
type opaqueError struct{ err error }

func (e *opaqueError) Error() string { return "transport or response error" }
func (e *opaqueError) Unwrap() error { return e.err }

// refreshExpiryFields are the token-response fields that give the refresh token's
// lifetime in seconds, first match wins: refresh_token_expires_in (Microsoft Entra for
// SPAs, GitHub Apps' user tokens, Google for time-limited grants, Slack and others),
// x_refresh_token_expires_in (Intuit QuickBooks), refresh_expires_in (Keycloak).
var refreshExpiryFields = []string{"refresh_token_expires_in", "x_refresh_token_expires_in", "refresh_expires_in"}

// positiveSeconds reads a JSON number (or a numeric string, as some providers send) of
// seconds, at most ten years.
func positiveSeconds(v any) (int64, bool) {
	var n float64
	switch x := v.(type) {
	case float64:
		n = x
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return 0, false
		}
		n = f
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0, false
		}
		n = f
	default:
		return 0, false
	}
	if n < 1 || n > 10*365*24*3600 {
		return 0, false
	}
	return int64(n), true
}

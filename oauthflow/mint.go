package oauthflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/tracing"
	"github.com/authpipe/authpipe-proxy/vault"
)

// Machine grants: access tokens the proxy mints itself from a long-lived grant, with no
// end user's authorization and no refresh token. Mint is the one entry point; the
// refresher calls it under the same single-flight, lease and commit as a refresh, and a
// new connection calls it once before anything is stored (machine_connection.go).
//
//   - oauth2_client_credentials (RFC 6749 section 4.4): grant_type=client_credentials,
//     scope = the provider's default_scopes, its token_params; the client authenticates as
//     the provider says (client_secret_basic, client_secret_post, private_key_jwt). The
//     client is the connection's own (its grant secret, {"client_id","client_secret"}) or,
//     when it has none, the provider's.
//   - jwt_bearer (RFC 7523 section 2.1): grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer
//     and assertion = a JWT signed with the connection's service-account key
//     (assertion.go), the connection's grant secret; the client authenticates as the
//     provider says (none, as for Google; or the provider's client).
//   - github_app: installation access tokens (githubapp.go).
//
// Failures are a refresh's: a refusal is a *ProviderError (invalid_client,
// unauthorized_client, invalid_grant: the credential is refused), anything else hides its
// text. No error carries a secret, a key, an assertion or the response body.

// MaxGrantSecretLen caps a connection's grant secret (16 KiB).
const MaxGrantSecretLen = MaxKeyLen

// GrantClient is an oauth2_client_credentials connection's own client: its grant secret,
// sealed as this JSON object.
type GrantClient struct {
	ClientID     string       `json:"client_id"`
	ClientSecret vault.Secret `json:"client_secret"`
}

// ErrInvalidGrantSecret: a grant secret that is not what the connection's mode needs (a
// malformed client object or service-account key). The text never carries it.
var ErrInvalidGrantSecret = errors.New("oauthflow: invalid grant secret")

// ParseGrantClient parses the grant secret {"client_id","client_secret"}: client_id 1-256
// printable characters, client_secret up to 16 KiB (a private_key_jwt client's PEM key).
func ParseGrantClient(raw []byte) (GrantClient, error) {
	if len(raw) == 0 || len(raw) > MaxGrantSecretLen {
		return GrantClient{}, fmt.Errorf("%w: empty or over 16 KiB", ErrInvalidGrantSecret)
	}
	var c GrantClient
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return GrantClient{}, fmt.Errorf("%w: must be {\"client_id\",\"client_secret\"}", ErrInvalidGrantSecret)
	}
	if c.ClientID == "" || len(c.ClientID) > 256 || strings.ContainsFunc(c.ClientID, isControl) {
		return GrantClient{}, fmt.Errorf("%w: client_id must be 1-256 printable characters", ErrInvalidGrantSecret)
	}
	if c.ClientSecret.IsZero() {
		return GrantClient{}, fmt.Errorf("%w: client_secret is required", ErrInvalidGrantSecret)
	}
	return c, nil
}

// Sealed is the grant secret's JSON, as it is sealed.
func (c GrantClient) Sealed() vault.Secret {
	b, _ := json.Marshal(map[string]string{"client_id": c.ClientID, "client_secret": c.ClientSecret.Reveal()})
	return vault.SecretFromBytes(b)
}

// Mint mints an access token for a connection of p (filled for the connection:
// ForConnection) over hc (the outbound package's TokenClient, as for Exchange), switching
// on p.AuthMode. client is the provider's client, grant the connection's grant secret
// (zero when it has none). now is the clock that expires_in and the assertions count
// from. The token has no refresh token (one a provider sends anyway is dropped).
func Mint(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, grant vault.Secret, now time.Time) (Token, error) {
	ctx, span := tracing.StartClient(ctx, "oauth2.mint", http.MethodPost, p.TokenURL)
	tok, err := mint(ctx, hc, p, client, grant, now)
	tracing.EndHTTP(span, statusOf(err), err)
	if err == nil && !tok.RefreshToken.IsZero() {
		tok.RefreshToken.Wipe()
		tok.RefreshToken, tok.RefreshExpiresAt = vault.Secret{}, nil
	}
	return tok, err
}

func mint(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, grant vault.Secret, now time.Time) (Token, error) {
	if hc == nil {
		return Token{}, errors.New("oauthflow: Mint needs an HTTP client")
	}
	if p.TokenURL == "" || len(p.Placeholders()) > 0 {
		return Token{}, fmt.Errorf("%w: %q: no token_url, or placeholders not expanded", ErrInvalidProvider, p.Name)
	}
	switch p.AuthMode {
	case AuthModeClientCredentials:
		return mintClientCredentials(ctx, hc, p, client, grant, now)
	case AuthModeJWTBearer:
		return mintJWTBearer(ctx, hc, p, client, grant, now)
	case AuthModeGitHubApp:
		return mintGitHubApp(ctx, hc, p, client, nil, now) // the whole installation (githubapp.go)
	default:
		return Token{}, fmt.Errorf("%w: %q: %s tokens are not minted", ErrInvalidProvider, p.Name, p.AuthMode)
	}
}

// MintUsesProviderClient reports whether a mint for a connection of p presents the
// provider's client (its secret or key): a client-credentials connection without its own
// client (ownGrant), a jwt_bearer provider that authenticates its client (not none), a
// GitHub App (the app's key).
func (p Provider) MintUsesProviderClient(ownGrant bool) bool {
	switch p.AuthMode {
	case AuthModeClientCredentials:
		return !ownGrant
	case AuthModeJWTBearer:
		return p.TokenAuthMethod != NoClientAuth
	}
	return true
}

// ConnectionClient is the client a minted connection of p presents at the provider's
// token and revocation endpoints: a client-credentials connection's own client (its grant
// secret) when it has one, else the provider's client (client), without its secret when the
// mode does not authenticate with it (MintUsesProviderClient).
func (p Provider) ConnectionClient(client ClientCredentials, grant vault.Secret) (ClientCredentials, error) {
	if p.AuthMode == AuthModeClientCredentials && !grant.IsZero() {
		own, err := ParseGrantClient(grant.Bytes())
		if err != nil {
			return ClientCredentials{}, err
		}
		return ClientCredentials{ClientID: own.ClientID, ClientSecret: own.ClientSecret}, nil
	}
	if !p.MintUsesProviderClient(!grant.IsZero()) {
		return ClientCredentials{ClientID: client.ClientID}, nil
	}
	return client, nil
}

// mintClientCredentials is the client_credentials grant (RFC 6749 section 4.4.2).
func mintClientCredentials(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, grant vault.Secret, now time.Time) (Token, error) {
	client, err := p.ConnectionClient(client, grant)
	if err != nil {
		return Token{}, err
	}
	if client.ClientID == "" || client.ClientSecret.IsZero() {
		return Token{}, fmt.Errorf("%w: %q: client credentials need a client id and secret (the provider's, or the connection's own)",
			ErrInvalidProvider, p.Name)
	}
	params := map[string]string{"grant_type": "client_credentials"}
	if len(p.DefaultScopes) > 0 {
		params["scope"] = p.JoinScopes(p.DefaultScopes)
	}
	return withNextSecret(client, func(client ClientCredentials) (Token, error) {
		return tokenCall(ctx, hc, p, client, p.TokenURL, params, p.TokenParams, now)
	})
}

// mintJWTBearer is the jwt-bearer grant (RFC 7523 section 2.1): a fresh assertion per call.
func mintJWTBearer(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, grant vault.Secret, now time.Time) (Token, error) {
	if grant.IsZero() {
		return Token{}, fmt.Errorf("%w: %q: jwt_bearer needs the connection's service-account key", ErrInvalidProvider, p.Name)
	}
	sa, err := ParseServiceAccountKey(grant.Bytes())
	if err != nil {
		return Token{}, err
	}
	assertion, err := p.GrantAssertion(sa, p.ConfigValue("subject"), p.TokenURL, now)
	if err != nil {
		return Token{}, err
	}
	params := map[string]string{"grant_type": GrantTypeJWTBearer, "assertion": assertion}
	if len(p.DefaultScopes) > 0 {
		params["scope"] = p.JoinScopes(p.DefaultScopes) // RFC 7523 section 2.1 (and the assertion's claim, for Google)
	}
	if p.TokenAuthMethod == NoClientAuth {
		client = ClientCredentials{}
	}
	return withNextSecret(client, func(client ClientCredentials) (Token, error) {
		return tokenCall(ctx, hc, p, client, p.TokenURL, params, p.TokenParams, now)
	})
}

package oauthflow

// GitHub App installation access tokens (auth mode github_app). The app's private key
// (PEM, RSA) is the provider's client secret and client_id is the App ID or the app's
// Client ID; a connection is an installation (connection_config.installation_id, filled
// into token_url). An installation token is minted with an app JWT (RS256, iss the app,
// iat 60 s in the past, exp at most 10 minutes ahead: GitHub, "Generating a JSON Web Token
// (JWT) for a GitHub App") posted to POST /app/installations/{installation_id}/access_tokens
// ("Create an installation access token for an app"), optionally narrowed to some
// repositories and permissions (narrowing.go); it lasts an hour and is revoked with
// DELETE /installation/token, authenticated by the token itself.
//
// This endpoint is not an OAuth token endpoint (no grant_type, a JSON body, the app JWT as
// a bearer credential, the token in "token"), so it has its own call here rather than
// tokenCall's; it keeps tokenCall's rules: the outbound TokenClient (no redirect followed),
// the body capped, a refusal reduced to a status and a fixed code, never a body's text.
// The caller checks the destination against the client secret's bound origins
// (vault.CheckOrigin) before calling, as for every token call.

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/tracing"
	"github.com/authpipe/authpipe-proxy/vault"
)

// GitHub's REST API request headers for the calls of this file.
const (
	GitHubAPIVersion = "2022-11-28"
	githubAccept     = "application/vnd.github+json"
)

// The app JWT's window: issued 60 s in the past against clock drift, expiring 9 minutes
// ahead, so that exp - iat is GitHub's maximum of 10 minutes.
const (
	appJWTBackdate = 60 * time.Second
	appJWTLifetime = 10 * time.Minute
)

// ErrInvalidAppKey: the github_app provider's client secret is not a PEM RSA private key
// of at least 2048 bits. Nothing is sent. It is an ErrInvalidKey (a mint refused for good:
// needs_reauth until the key is replaced) and an ErrInvalidProvider.
var ErrInvalidAppKey = fmt.Errorf("%w: %w: the github_app client secret must be the app's PEM RSA private key (2048 bits or more)",
	ErrInvalidKey, ErrInvalidProvider)

// ValidateGitHubAppKey checks that secret is usable as a GitHub App's private key.
func ValidateGitHubAppKey(secret vault.Secret) error {
	_, err := gitHubAppKey(secret)
	return err
}

// gitHubAppKey parses the app's private key: PKCS#1 ("RSA PRIVATE KEY", what GitHub
// issues) or PKCS#8 holding an RSA key, at most MaxKeyLen bytes.
func gitHubAppKey(secret vault.Secret) (*rsa.PrivateKey, error) {
	if n := len(secret.Bytes()); n == 0 || n > MaxKeyLen {
		return nil, ErrInvalidAppKey
	}
	block, _ := pem.Decode(secret.Bytes())
	if block == nil {
		return nil, ErrInvalidAppKey
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, ErrInvalidAppKey
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, ErrInvalidAppKey
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, ErrInvalidAppKey
		}
		key = rk
	default:
		return nil, ErrInvalidAppKey
	}
	if key.N.BitLen() < 2048 {
		return nil, ErrInvalidAppKey
	}
	return key, nil
}

// gitHubAppJWT signs the app JWT: RS256, iss the client id (App ID or Client ID), iat now
// minus 60 s, exp iat plus 10 minutes. It is a bearer credential for ten minutes and is
// returned only to be sent.
func gitHubAppJWT(client ClientCredentials, now time.Time) (vault.Secret, error) {
	if client.ClientID == "" || strings.ContainsFunc(client.ClientID, isControl) {
		return vault.Secret{}, fmt.Errorf("%w: github_app needs client_id (the App ID or Client ID)", ErrInvalidProvider)
	}
	key, err := gitHubAppKey(client.ClientSecret)
	if err != nil {
		return vault.Secret{}, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return vault.Secret{}, fmt.Errorf("oauthflow: app JWT signer: %w", err)
	}
	iat := now.Add(-appJWTBackdate)
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: client.ClientID,
		IssuedAt: jwt.NewNumericDate(iat), Expiry: jwt.NewNumericDate(iat.Add(appJWTLifetime))}).Serialize()
	if err != nil {
		return vault.Secret{}, fmt.Errorf("oauthflow: signing the app JWT: %w", err)
	}
	return vault.NewSecret(tok), nil
}

// MintGitHubApp mints an installation access token of p's installation (p filled for the
// connection: its token_url names the installation) as the app client, narrowed to n when
// n is not nil, over hc (the outbound TokenClient). The caller has checked p.TokenURL
// against the client secret's bound origins. The Token's Scopes are what GitHub granted:
// "<permission>:<access>" for each permission and "repository:<name>" for each repository
// the token is limited to.
//
// A refusal is a *ProviderError with a fixed code by status: 401 invalid_client (the app
// JWT was refused: wrong key or app id), 403 unauthorized_client (the installation is
// suspended or the app may not), 404 invalid_grant (no such installation: uninstalled),
// 422 invalid_scope (the narrowing asks for more than the installation has), 429 (and a
// 403 that carries GitHub's rate-limit headers) as 429 with its Retry-After.
func MintGitHubApp(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, n *Narrowing, now time.Time) (Token, error) {
	ctx, span := tracing.StartClient(ctx, "github_app.mint", http.MethodPost, p.TokenURL)
	tok, err := mintGitHubApp(ctx, hc, p, client, n, now)
	tracing.EndHTTP(span, statusOf(err), err)
	return tok, err
}

func mintGitHubApp(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, n *Narrowing, now time.Time) (Token, error) {
	if hc == nil {
		return Token{}, errors.New("oauthflow: MintGitHubApp needs an HTTP client")
	}
	if p.AuthMode != AuthModeGitHubApp {
		return Token{}, fmt.Errorf("%w: %q: not a github_app provider", ErrInvalidProvider, p.Name)
	}
	if p.TokenURL == "" || len(p.Placeholders()) > 0 {
		return Token{}, fmt.Errorf("%w: %q: token_url not filled for the installation", ErrInvalidProvider, p.Name)
	}
	if err := n.Validate(); err != nil {
		return Token{}, err
	}
	// An app may have two private keys at GitHub while one replaces the other: a JWT
	// refused (401 invalid_client) is signed once more with the next key when there is one.
	return withNextSecret(client, func(client ClientCredentials) (Token, error) {
		return installationTokenCall(ctx, hc, p, client, n, now)
	})
}

// installationTokenCall is one POST of the installation token endpoint with the app JWT
// signed by client's key.
func installationTokenCall(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, n *Narrowing, now time.Time) (Token, error) {
	assertion, err := gitHubAppJWT(client, now)
	if err != nil {
		return Token{}, err
	}
	defer assertion.Wipe()
	var body []byte
	if !n.Empty() {
		body = n.requestBody()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.TokenURL, bytes.NewReader(body))
	if err != nil {
		return Token{}, fmt.Errorf("%w: %q: token_url", ErrInvalidProvider, p.Name)
	}
	req.Header.Set("Accept", githubAccept)
	req.Header.Set("X-GitHub-Api-Version", GitHubAPIVersion)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+assertion.Reveal())
	res, err := hc.Do(req)
	if err != nil {
		return Token{}, providerFailure("token", err)
	}
	defer res.Body.Close()
	raw, rerr := outbound.ReadLimited(res.Body, maxTokenBody)
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
		return Token{}, gitHubFailure("token", res)
	}
	if rerr != nil {
		return Token{}, providerFailure("token", rerr)
	}
	return readInstallationToken(raw, now)
}

// gitHubFailure maps a GitHub REST refusal to a *ProviderError. GitHub's error bodies are
// free text ({"message":..}): only the status is kept, with a fixed code.
func gitHubFailure(op string, res *http.Response) error {
	pe := &ProviderError{Op: op, Code: ProviderErrorCode, Status: res.StatusCode, RetryAfter: res.Header.Get("Retry-After")}
	switch res.StatusCode {
	case http.StatusUnauthorized:
		pe.Code = "invalid_client"
	case http.StatusForbidden:
		if pe.RetryAfter != "" || res.Header.Get("X-Ratelimit-Remaining") == "0" {
			// GitHub signals its (secondary) rate limits with 403 and these headers: a
			// rate limit, backed off as a 429 is, never a refusal of the app.
			pe.Status, pe.Code = http.StatusTooManyRequests, ProviderErrorCode
			if pe.RetryAfter == "" {
				pe.RetryAfter = res.Header.Get("X-Ratelimit-Reset-After")
			}
		} else {
			pe.Code = "unauthorized_client"
		}
	case http.StatusNotFound:
		pe.Code = "invalid_grant"
	case http.StatusUnprocessableEntity:
		pe.Code = "invalid_scope"
	case http.StatusBadRequest:
		pe.Code = "invalid_request"
	default:
		pe.NoCode = true
	}
	return pe
}

// installationToken is the part of GitHub's 201 response that is read.
type installationToken struct {
	Token        string            `json:"token"`
	ExpiresAt    string            `json:"expires_at"`
	Permissions  map[string]string `json:"permissions"`
	Repositories []struct {
		Name string `json:"name"`
	} `json:"repositories"`
}

// maxInstallationTokenLife bounds the expires_at accepted from a response (GitHub: one
// hour; a day leaves room for clock skew and any change, never "forever").
const maxInstallationTokenLife = 24 * time.Hour

func readInstallationToken(raw []byte, now time.Time) (Token, error) {
	var doc installationToken
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Token == "" || strings.ContainsFunc(doc.Token, isControl) {
		return Token{}, fmt.Errorf("oauthflow: token request failed: %w", &opaqueError{err: ErrMalformedTokenResponse})
	}
	exp, err := time.Parse(time.RFC3339, doc.ExpiresAt)
	if err != nil || !exp.After(now) || exp.After(now.Add(maxInstallationTokenLife)) {
		return Token{}, fmt.Errorf("oauthflow: token request failed: %w",
			&opaqueError{err: fmt.Errorf("%w: expires_at missing or out of range", ErrMalformedTokenResponse)})
	}
	exp = exp.UTC()
	out := Token{AccessToken: vault.NewSecret(doc.Token), TokenType: "Bearer", ExpiresAt: &exp}
	for name, access := range doc.Permissions {
		if validPermissionName(name) && validAccess(access) {
			out.Scopes = append(out.Scopes, name+":"+access)
		}
	}
	slices.Sort(out.Scopes)
	var repos []string
	for _, r := range doc.Repositories {
		if validRepositoryName(r.Name) {
			repos = append(repos, RepositoryScopePrefix+r.Name)
		}
	}
	slices.Sort(repos)
	out.Scopes = append(out.Scopes, slices.Compact(repos)...)
	return out, nil
}

// RepositoryScopePrefix marks a repository among an installation token's scopes.
const RepositoryScopePrefix = "repository:"

// GitHubAppRevocationURL is where an installation token revokes itself:
// DELETE <api_base_url>/installation/token ("Revoke an installation access token").
func (p Provider) GitHubAppRevocationURL() string {
	return strings.TrimSuffix(p.APIBaseURL, "/") + "/installation/token"
}

// RevokeGitHubApp revokes an installation access token at GitHub, authenticated by the
// token itself, over hc (the outbound TokenClient). The caller has checked
// GitHubAppRevocationURL against the token's bound origins. 204 means revoked; 401 means
// GitHub no longer knows the token (expired or revoked before), which is the same
// outcome (as RFC 7009 section 2.2 treats an unknown token). Anything else is a
// *ProviderError or a transport error.
func RevokeGitHubApp(ctx context.Context, hc *http.Client, p Provider, token vault.Secret) error {
	dest := p.GitHubAppRevocationURL()
	ctx, span := tracing.StartClient(ctx, "github_app.revoke", http.MethodDelete, dest)
	err := revokeGitHubApp(ctx, hc, p, dest, token)
	tracing.EndHTTP(span, statusOf(err), err)
	return err
}

func revokeGitHubApp(ctx context.Context, hc *http.Client, p Provider, dest string, token vault.Secret) error {
	if hc == nil {
		return errors.New("oauthflow: RevokeGitHubApp needs an HTTP client")
	}
	if p.AuthMode != AuthModeGitHubApp || p.APIBaseURL == "" {
		return ErrRevocationUnsupported
	}
	if token.IsZero() {
		return errors.New("oauthflow: nothing to revoke")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, dest, nil)
	if err != nil {
		return fmt.Errorf("%w: %q: api_base_url", ErrInvalidProvider, p.Name)
	}
	req.Header.Set("Accept", githubAccept)
	req.Header.Set("X-GitHub-Api-Version", GitHubAPIVersion)
	req.Header.Set("Authorization", "Bearer "+token.Reveal())
	res, err := hc.Do(req)
	if err != nil {
		return providerFailure("revoke", err)
	}
	defer res.Body.Close()
	_, _ = outbound.ReadLimited(res.Body, maxRevokeBody)
	switch res.StatusCode {
	case http.StatusNoContent, http.StatusOK, http.StatusUnauthorized:
		return nil
	}
	return gitHubFailure("revoke", res)
}

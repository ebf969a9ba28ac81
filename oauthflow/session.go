package oauthflow

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// SessionLifetime bounds a connect session, from its creation to its callback, and so
// the lifetime of its state.
const SessionLifetime = 10 * time.Minute

// AuthRequest is one authorization request (RFC 6749 section 4.1.1) with PKCE (RFC 7636
// section 4.3). It holds the raw state and verifier: it lives only while the redirect is
// built and is never logged (String redacts).
type AuthRequest struct {
	ClientID    string
	RedirectURI string
	Scopes      []string
	State       string
	Verifier    string
}

// String never shows the state or the verifier.
func (r AuthRequest) String() string {
	return fmt.Sprintf("AuthRequest{client_id:%q redirect_uri:%q scopes:%q state:%t verifier:%t}",
		r.ClientID, r.RedirectURI, r.Scopes, r.State != "", r.Verifier != "")
}

// AuthCodeURL returns the provider's authorization URL for r: response_type=code,
// client_id, redirect_uri, scope (joined with the provider's separator), state,
// code_challenge (S256 of the verifier) and code_challenge_method=S256, plus the
// provider's fixed authorization_params. A parameter the flow sets can never come from
// the provider configuration: a reserved name in authorization_params or already in the
// authorization URL's query is an error, not silently overridden.
func AuthCodeURL(p Provider, r AuthRequest) (string, error) {
	if _, err := p.tokenEndpoint(); err != nil { // oauth2, placeholders expanded, auth method known
		return "", err
	}
	if r.ClientID == "" || r.RedirectURI == "" {
		return "", fmt.Errorf("%w: %q: client_id and redirect_uri are required", ErrInvalidProvider, p.Name)
	}
	if err := CheckStateFormat(r.State); err != nil {
		return "", err
	}
	if err := ValidateVerifier(r.Verifier); err != nil {
		return "", err
	}
	u, err := url.Parse(p.AuthorizationURL)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
		return "", fmt.Errorf("%w: %q: authorization_url is not an absolute URL", ErrInvalidProvider, p.Name)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", fmt.Errorf("%w: %q: authorization_url has a malformed query", ErrInvalidProvider, p.Name)
	}
	for k := range q {
		if reservedAuthParam(k) || strings.HasPrefix(strings.ToLower(k), "code_challenge") {
			return "", fmt.Errorf("%w: %q: authorization_url sets %s, which the flow sets", ErrInvalidProvider, p.Name, k)
		}
	}
	for k, v := range p.AuthorizationParams {
		if reservedAuthParam(k) {
			return "", fmt.Errorf("%w: %q: authorization_params: %s is set by the flow", ErrInvalidProvider, p.Name, k)
		}
		q.Set(k, v)
	}
	q.Set("response_type", "code")
	q.Set("client_id", r.ClientID)
	q.Set("redirect_uri", r.RedirectURI)
	if len(r.Scopes) > 0 {
		q.Set("scope", p.JoinScopes(r.Scopes))
	}
	q.Set("state", r.State)
	q.Set("code_challenge", Challenge(r.Verifier))
	q.Set("code_challenge_method", ChallengeMethod)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

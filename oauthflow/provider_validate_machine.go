package oauthflow

// Provider.Validate for the modes without an end user's authorization (basic, and the
// minted modes: oauth2_client_credentials, jwt_bearer, github_app), and the catalog's
// categories.

import (
	"fmt"
	"slices"
	"strings"
)

// Categories are the catalog's categories; an entry names one or more of them.
var Categories = []string{
	"accounting", "advertising", "ai", "analytics", "ats", "calendar", "cloud", "communication",
	"crm", "data", "design", "developer-tools", "documents", "ecommerce", "email", "erp",
	"finance", "hr", "identity", "marketing", "payments", "productivity", "project-management",
	"security", "social", "storage", "support", "video",
}

func (p Provider) validateCategories() string {
	if len(p.Categories) > 4 {
		return "categories: at most 4"
	}
	for i, c := range p.Categories {
		if !slices.Contains(Categories, c) {
			return "categories: unknown category " + c
		}
		if slices.Contains(p.Categories[:i], c) {
			return "categories: duplicate category"
		}
	}
	return ""
}

// validateMachine checks a basic or minted-mode provider: no authorization endpoint and
// nothing of the browser flow or of refresh tokens; a token endpoint for the minted modes,
// with a client authentication each mode can use; an API base where the credential is only
// useful there.
func (p Provider) validateMachine(bad func(string, ...any) error) error {
	if p.AuthorizationURL != "" || p.RefreshURL != "" || p.Issuer != "" || p.RequireIss || p.PKCE ||
		p.RotatesRefreshTokens || p.RefreshTokenIdleTTL != 0 || len(p.AuthorizationParams) > 0 ||
		len(p.RefreshParams) > 0 || p.ScopeSeparator != "" && p.ScopeSeparator != " " && p.ScopeSeparator != "," {
		return bad("%s has no authorization flow and no refresh token: authorization_url, refresh_url, issuer, require_iss, pkce, rotates_refresh_tokens, refresh_token_idle_ttl, authorization_params and refresh_params are not allowed", p.AuthMode)
	}
	if p.APIKeyAuth != "" || p.APIKeyHeader != "" || p.APIKeyFormat != "" || p.APIKeyBasicUsername != "" {
		return bad("api_key_* fields are for api_key providers")
	}
	if p.AuthMode == AuthModeBasic {
		if p.TokenURL != "" || p.RevocationURL != "" || p.TokenAuthMethod != "" || len(p.DefaultScopes) > 0 ||
			len(p.TokenParams) > 0 || p.TokenRequestFormat != "" || len(p.TokenResponseFields) > 0 ||
			len(p.MetadataFields) > 0 || p.AssumedExpiresIn != 0 || p.AssertionAudience != "" {
			return bad("basic has no token endpoint: token fields are not allowed")
		}
		if p.APIBaseURL == "" {
			return bad("basic needs api_base_url")
		}
		return nil
	}
	if p.TokenURL == "" {
		return bad("%s needs token_url", p.AuthMode)
	}
	if p.HealthCheckURL != "" {
		return bad("health_check_url is for api_key and basic providers (a minted token is its own check)")
	}
	for _, s := range p.DefaultScopes {
		if s == "" || len(s) > 256 || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '"' || r == '\\' }) {
			return bad("default_scopes: empty or contains whitespace, quote, backslash or control character")
		}
	}
	switch p.AuthMode {
	case AuthModeClientCredentials:
		switch p.TokenAuthMethod {
		case ClientSecretBasic, ClientSecretPost, PrivateKeyJWT, TLSClientAuth:
		default:
			return bad("token_auth_method must be client_secret_basic, client_secret_post, private_key_jwt or tls_client_auth")
		}
		if p.AssertionAudience != "" && p.TokenAuthMethod != PrivateKeyJWT {
			return bad("assertion_audience is for jwt_bearer and private_key_jwt")
		}
	case AuthModeJWTBearer:
		switch p.TokenAuthMethod {
		case NoClientAuth, ClientSecretBasic, ClientSecretPost:
		default:
			return bad("token_auth_method must be none, client_secret_basic or client_secret_post")
		}
	case AuthModeGitHubApp:
		if p.TokenAuthMethod != "" || p.RevocationURL != "" || len(p.DefaultScopes) > 0 || p.AssertionAudience != "" ||
			len(p.TokenParams) > 0 || p.TokenRequestFormat != "" || len(p.TokenResponseFields) > 0 || len(p.MetadataFields) > 0 {
			return bad("github_app mints with the app's JWT at token_url: token_auth_method, revocation_url, default_scopes, assertion_audience and token settings are not allowed")
		}
		if !strings.Contains(p.TokenURL, "/{installation_id}/") || !slices.ContainsFunc(p.ConnectionConfig, func(c ConfigParam) bool { return c.Name == "installation_id" }) {
			return bad("github_app token_url must have an {installation_id} path segment, declared in connection_config")
		}
		if p.APIBaseURL == "" {
			return bad("github_app needs api_base_url")
		}
		return nil
	}
	if reason := p.validateTokenSettings(); reason != "" {
		return bad("%s", reason)
	}
	return nil
}

// NeedsWorkspaceClient reports whether p's connections need the workspace's client (its
// configuration's client id and secret): oauth2 and github_app always, jwt_bearer when it
// authenticates the client at the token endpoint. A catalog template of another mode serves
// connections without a workspace configuration: api_key and basic (the end user's
// credential), jwt_bearer with token_auth_method none (the connection's service-account
// key), oauth2_client_credentials (the connection's own client; the workspace may still
// configure one for every connection).
func (p Provider) NeedsWorkspaceClient() bool {
	switch p.AuthMode {
	case AuthModeOAuth2, AuthModeGitHubApp:
		return true
	case AuthModeJWTBearer:
		return p.TokenAuthMethod != NoClientAuth
	}
	return false
}

// HoldsClientSecret reports whether a workspace's configuration of p may hold a client
// secret (for private_key_jwt a private key, for tls_client_auth a certificate and its
// key, for github_app the app's private key).
func (p Provider) HoldsClientSecret() bool {
	return p.AuthMode == AuthModeOAuth2 || p.AuthMode == AuthModeClientCredentials || p.AuthMode == AuthModeGitHubApp ||
		p.AuthMode == AuthModeJWTBearer && p.TokenAuthMethod != NoClientAuth
}

// ValidateMode checks the fields p's auth mode requires and forbids (the catalog's rules,
// without the URL checks the providers service makes under the deployment's URL policy).
// oauth2 and api_key providers are checked by the providers service itself.
func (p Provider) ValidateMode() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %q: %s", ErrInvalidProvider, p.Name, fmt.Sprintf(format, args...))
	}
	if reason := p.validateCategories(); reason != "" {
		return bad("%s", reason)
	}
	switch p.AuthMode {
	case AuthModeBasic, AuthModeClientCredentials, AuthModeJWTBearer, AuthModeGitHubApp:
		return p.validateMachine(bad)
	}
	return nil
}

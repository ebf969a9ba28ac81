package oauthflow

// Provider.Validate: what a provider configuration (from the catalog, a workspace or the
// control plane) must satisfy before anything uses it, URL templates included.

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/authpipe/authpipe-proxy/internal/tlsutil"
)

var (
	nameRE        = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$`)
	placeholderRE = regexp.MustCompile(`\{([a-z][a-z0-9_]{0,31})\}`)
	dnsLabelRE    = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	paramNameRE   = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,64}$`)
	headerNameRE  = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
)

// placeholderMarker stands in for a placeholder while a URL template is parsed.
const placeholderMarker = "x-placeholder-x"

// reservedAuthParam reports the parameters the flow sets itself; a template cannot
// replace them.
func reservedAuthParam(name string) bool {
	switch strings.ToLower(name) {
	case "client_id", "code_challenge", "code_challenge_method", "redirect_uri",
		"response_mode", "response_type", "scope", "state", "request", "request_uri":
		return true
	}
	return false
}

// forbiddenStaticHeader reports headers a template can never set: credentials, framing
// and hop-by-hop headers.
func forbiddenStaticHeader(name string) bool {
	switch strings.ToLower(name) {
	case "authorization", "proxy-authorization", "cookie", "set-cookie", "host",
		"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
		"content-length", "proxy-connection", "forwarded", "x-forwarded-for",
		"x-forwarded-host", "x-forwarded-proto", "x-api-key":
		return true
	}
	return false
}

// Validate reports the first problem with p. It changes nothing. It checks: the name
// ([a-z0-9-]), a display name, known enum values, the fields each auth mode requires and
// forbids, that every URL is an absolute https URL in canonical form without userinfo,
// fragment or wildcard (placeholders only as whole host labels), scopes, extra
// authorization parameters and static headers.
func (p Provider) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %q: %s", ErrInvalidProvider, p.Name, fmt.Sprintf(format, args...))
	}
	if !nameRE.MatchString(p.Name) {
		return fmt.Errorf("%w: name must be 1-64 characters of [a-z0-9-], not starting or ending with -", ErrInvalidProvider)
	}
	if p.DisplayName == "" || len(p.DisplayName) > 100 || strings.ContainsFunc(p.DisplayName, isControl) {
		return bad("display_name must be 1-100 printable characters")
	}
	for _, f := range p.urlFields() {
		if *f.val == "" {
			continue
		}
		if reason := checkTemplateURL(*f.val, f.name == "docs_url"); reason != "" {
			return bad("%s: %s", f.name, reason)
		}
	}
	if p.Issuer != "" && strings.ContainsAny(p.Issuer, "?#") {
		return bad("issuer must not have a query")
	}
	if p.RequireIss && p.Issuer == "" {
		return bad("require_iss needs an issuer")
	}
	if p.AssumedExpiresIn < 0 || p.AssumedExpiresIn > 10*365*24*3600 {
		return bad("assumed_expires_in must be 0 to 10 years in seconds")
	}
	if p.RefreshTokenIdleTTL != 0 && (p.RefreshTokenIdleTTL < 600 || p.RefreshTokenIdleTTL > 10*365*24*3600) {
		return bad("refresh_token_idle_ttl must be 10 minutes to 10 years in seconds")
	}
	switch p.MinTLSVersion {
	case "", "1.2", "1.3":
	default:
		return bad("min_tls_version must be \"1.2\" or \"1.3\"")
	}
	if err := tlsutil.ValidatePins(p.Pins); err != nil {
		return bad("pins: %s", err)
	}
	if err := p.validateStaticHeaders(); err != nil {
		return bad("%s", err)
	}
	if reason := p.validateConnectionConfig(); reason != "" {
		return bad("%s", reason)
	}
	if reason := p.validateCategories(); reason != "" {
		return bad("%s", reason)
	}
	switch p.AuthMode {
	case AuthModeOAuth2:
		return p.validateOAuth2(bad)
	case AuthModeAPIKey:
		return p.validateAPIKey(bad)
	case AuthModeBasic, AuthModeClientCredentials, AuthModeJWTBearer, AuthModeGitHubApp:
		return p.validateMachine(bad) // provider_validate_machine.go
	default:
		return bad("auth_mode must be oauth2, api_key, basic, oauth2_client_credentials, jwt_bearer or github_app")
	}
}

func (p Provider) validateOAuth2(bad func(string, ...any) error) error {
	if p.AuthorizationURL == "" || p.TokenURL == "" {
		return bad("oauth2 needs authorization_url and token_url")
	}
	switch p.TokenAuthMethod {
	case ClientSecretBasic, ClientSecretPost:
	default:
		return bad("token_auth_method must be client_secret_basic or client_secret_post")
	}
	if p.AssertionAudience != "" {
		return bad("assertion_audience is for jwt_bearer and private_key_jwt")
	}
	switch p.ScopeSeparator {
	case "", " ", ",":
	default:
		return bad("scope_separator must be \" \" or \",\"")
	}
	seen := map[string]bool{}
	for _, s := range p.DefaultScopes {
		if s == "" || len(s) > 256 || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '"' || r == '\\' }) {
			return bad("default_scopes: empty or contains whitespace, quote, backslash or control character")
		}
		if p.ScopeSeparator == "," && strings.Contains(s, ",") {
			return bad("default_scopes: scope contains the separator")
		}
		if seen[s] {
			return bad("default_scopes: duplicate scope")
		}
		seen[s] = true
	}
	for k, v := range p.AuthorizationParams {
		if !paramNameRE.MatchString(k) {
			return bad("authorization_params: bad parameter name")
		}
		if reservedAuthParam(k) {
			return bad("authorization_params: %s is set by the flow", k)
		}
		if v == "" || len(v) > 256 || strings.ContainsFunc(v, isControl) {
			return bad("authorization_params: value of %s must be 1-256 printable characters", k)
		}
	}
	if reason := p.validateTokenSettings(); reason != "" {
		return bad("%s", reason)
	}
	if p.HealthCheckURL != "" || p.APIKeyAuth != "" || p.APIKeyHeader != "" || p.APIKeyFormat != "" || p.APIKeyBasicUsername != "" {
		return bad("api_key_* and health_check_url are for api_key providers")
	}
	return nil
}

func (p Provider) validateAPIKey(bad func(string, ...any) error) error {
	if p.AuthorizationURL != "" || p.TokenURL != "" || p.RefreshURL != "" || p.RevocationURL != "" ||
		p.Issuer != "" || p.RequireIss || p.PKCE || p.RotatesRefreshTokens || p.AssumedExpiresIn != 0 || p.RefreshTokenIdleTTL != 0 ||
		len(p.DefaultScopes) > 0 || p.ScopeSeparator != "" || p.TokenAuthMethod != "" || len(p.AuthorizationParams) > 0 ||
		len(p.TokenParams) > 0 || len(p.RefreshParams) > 0 || p.TokenRequestFormat != "" || len(p.TokenResponseFields) > 0 ||
		len(p.MetadataFields) > 0 || p.AssertionAudience != "" {
		return bad("oauth2 fields are not allowed on an api_key provider")
	}
	if p.APIBaseURL == "" {
		return bad("api_key needs api_base_url")
	}
	switch p.APIKeyAuth {
	case APIKeyHeader:
		if !headerNameRE.MatchString(p.APIKeyHeader) {
			return bad("api_key_header must be a header name")
		}
		if strings.Count(p.APIKeyFormat, "{key}") != 1 || strings.ContainsFunc(p.APIKeyFormat, isControl) || len(p.APIKeyFormat) > 64 {
			return bad("api_key_format must contain {key} exactly once and no control character")
		}
		if p.APIKeyBasicUsername != "" {
			return bad("api_key_basic_username is for api_key_auth basic")
		}
	case APIKeyBasic:
		if p.APIKeyHeader != "" || p.APIKeyFormat != "" {
			return bad("api_key_header and api_key_format are for api_key_auth header")
		}
		if strings.ContainsFunc(p.APIKeyBasicUsername, func(r rune) bool { return isControl(r) || r == ':' }) {
			return bad("api_key_basic_username must not contain ':' or a control character")
		}
	default:
		return bad("api_key_auth must be header or basic")
	}
	return nil
}

func (p Provider) validateStaticHeaders() error {
	for k, v := range p.StaticHeaders {
		if !headerNameRE.MatchString(k) {
			return errors.New("static_headers: bad header name")
		}
		if forbiddenStaticHeader(k) || strings.EqualFold(k, p.APIKeyHeader) {
			return fmt.Errorf("static_headers: %s may not be set", k)
		}
		if v == "" || len(v) > 256 || strings.ContainsFunc(v, isControl) {
			return fmt.Errorf("static_headers: value of %s must be 1-256 printable characters", k)
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// checkTemplateURL checks a URL field: https, canonical, no userinfo, fragment, wildcard
// or dot segment; placeholders (not allowed in docs_url) only as whole path segments or
// whole host labels followed by fixed labels that hold a registrable domain.
func checkTemplateURL(raw string, isDocs bool) string {
	return checkTemplateURLRules(raw, isDocs, urlRules{})
}

// checkTemplateURLRules is checkTemplateURL under r (a custom provider of the dev profile
// may use plain http to loopback; the deployment's URL policy decides the rest).
func checkTemplateURLRules(raw string, isDocs bool, r urlRules) string {
	if strings.Contains(raw, placeholderMarker) {
		return "contains the reserved text " + placeholderMarker
	}
	sub := placeholderRE.ReplaceAllString(raw, placeholderMarker)
	if sub != raw && isDocs {
		return "placeholders are not allowed here"
	}
	if strings.ContainsAny(sub, "{}") {
		return "malformed placeholder"
	}
	u, reason := strictURL(sub, r)
	if reason != "" {
		return reason
	}
	n := strings.Count(sub, placeholderMarker)
	if n == 0 {
		return ""
	}
	labels := strings.Split(u.Hostname(), ".")
	inHost, last := 0, -1
	for i, l := range labels {
		if l == placeholderMarker {
			inHost++
			last = i
		}
	}
	inPath := 0
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		if seg == placeholderMarker {
			inPath++
		}
	}
	if inHost+inPath != n {
		return "a placeholder may only be a whole label of the host or a whole segment of the path"
	}
	if inHost == 0 {
		return ""
	}
	if len(labels)-1-last < 2 {
		return "at least two fixed labels must follow the last placeholder in the host"
	}
	if !registrableSuffix(strings.Join(labels[last+1:], ".")) {
		return "the fixed labels after the last placeholder must hold a registrable domain, not a public suffix"
	}
	return ""
}

// ValidateSettings checks what a workspace's custom provider adds to the URL checks the
// providers service makes itself: the connection_config declarations (every placeholder
// declared, each a whole host label before a registrable domain or a whole path segment)
// and, for oauth2, the token request settings. It changes nothing.
func (p Provider) ValidateSettings() error {
	bad := func(reason string) error { return fmt.Errorf("%w: %q: %s", ErrInvalidProvider, p.Name, reason) }
	for _, f := range p.urlFields() {
		if strings.ContainsAny(*f.val, "{}") {
			if reason := checkTemplateURLRules(*f.val, f.name == "docs_url", urlRules{allowHTTPLoopback: true}); reason != "" {
				return bad(f.name + ": " + reason)
			}
		}
	}
	if reason := p.validateConnectionConfig(); reason != "" {
		return bad(reason)
	}
	if p.AuthMode == AuthModeOAuth2 {
		if reason := p.validateTokenSettings(); reason != "" {
			return bad(reason)
		}
	}
	return nil
}

// SampleURL is raw with each placeholder replaced by a fixed DNS label, for checks that
// need a URL (the deployment's URL policy) of a template.
func SampleURL(raw string) string { return placeholderRE.ReplaceAllString(raw, "placeholder") }

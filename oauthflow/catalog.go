package oauthflow

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/oauth2"

	"github.com/authpipe/authpipe-proxy/internal/tlsutil"
)

//go:embed providers.yaml
var embeddedProviders string

// ErrInvalidProvider is wrapped by every error of Provider.Validate, ParseCatalog and
// Provider.Expand.
var ErrInvalidProvider = errors.New("oauthflow: invalid provider")

// AuthMode is how a provider's credential is obtained.
type AuthMode string

// Auth modes.
const (
	AuthModeOAuth2 AuthMode = "oauth2"  // authorization code flow with PKCE
	AuthModeAPIKey AuthMode = "api_key" // the end user pastes a key
)

// TokenAuthMethod is how the client authenticates at the token endpoint (RFC 6749
// section 2.3.1; the names are those of RFC 7591). It is set for every provider, never
// auto-detected: x/oauth2's auto-detection retries with the secret in a second place.
type TokenAuthMethod string

// Token endpoint authentication methods.
const (
	ClientSecretBasic TokenAuthMethod = "client_secret_basic" // HTTP Basic
	ClientSecretPost  TokenAuthMethod = "client_secret_post"  // form parameters
)

// APIKeyAuth is how the forwarding proxy injects an API key.
type APIKeyAuth string

// API key injection styles.
const (
	// APIKeyHeader puts APIKeyFormat, with {key} replaced by the key, into APIKeyHeader.
	APIKeyHeader APIKeyAuth = "header"
	// APIKeyBasic sends HTTP Basic authentication. With APIKeyBasicUsername set, the key
	// is the password (Mailgun: user "api"); without it, the stored key is
	// "username:password" (Twilio: "ACxxxx:auth-token").
	APIKeyBasic APIKeyAuth = "basic"
)

// Provider is a provider template from the catalog, or (after a workspace overrides
// fields) the configuration of one integration. The JSON names are those of
// GET /v1/catalog. A Provider holds no secret.
//
// URL fields may contain placeholders such as {shop} or {subdomain}: a placeholder is
// "{" + [a-z][a-z0-9_]* + "}", it may stand only for one whole label of the host, and at
// least two literal labels must follow the last placeholder, so the registrable domain is
// fixed by the template (https://{shop}.myshopify.com, never https://{host}/ or
// https://x.{tld}). Expand fills them with DNS labels before the provider is used.
type Provider struct {
	Name        string   `yaml:"name" json:"name"`
	DisplayName string   `yaml:"display_name" json:"display_name"`
	AuthMode    AuthMode `yaml:"auth_mode" json:"auth_mode"`

	// OAuth 2.0 endpoints. RefreshURL is set only where a provider refreshes at an
	// endpoint other than TokenURL (Figma). RevocationURL only where the provider has an
	// RFC 7009 endpoint (form-encoded "token" parameter, client authentication as at the
	// token endpoint).
	AuthorizationURL string `yaml:"authorization_url,omitempty" json:"authorization_url,omitempty"`
	TokenURL         string `yaml:"token_url,omitempty" json:"token_url,omitempty"`
	RefreshURL       string `yaml:"refresh_url,omitempty" json:"refresh_url,omitempty"`
	RevocationURL    string `yaml:"revocation_url,omitempty" json:"revocation_url,omitempty"`

	// Issuer is the authorization server's issuer identifier (OpenID Connect / RFC 8414).
	// When a callback carries iss, it must equal Issuer byte for byte (RFC 9207);
	// RequireIss makes a callback without iss fail too, and is set only for providers that
	// send iss on every authorization response.
	Issuer     string `yaml:"issuer,omitempty" json:"issuer,omitempty"`
	RequireIss bool   `yaml:"require_iss,omitempty" json:"require_iss,omitempty"`

	DefaultScopes []string `yaml:"default_scopes,omitempty" json:"default_scopes,omitempty"`
	// ScopeSeparator joins scopes in the authorization request: " " (RFC 6749 section
	// 3.3, the default) or "," for providers that want commas.
	ScopeSeparator  string          `yaml:"scope_separator,omitempty" json:"scope_separator,omitempty"`
	TokenAuthMethod TokenAuthMethod `yaml:"token_auth_method,omitempty" json:"token_auth_method,omitempty"`
	// PKCE says whether the provider is documented to check code_challenge. The proxy
	// sends one anyway.
	PKCE bool `yaml:"pkce" json:"pkce"`
	// RotatesRefreshTokens: a refresh may return a new refresh token and retire the old
	// one, so the new one must be stored in the same transaction that records the refresh.
	RotatesRefreshTokens bool `yaml:"rotates_refresh_tokens,omitempty" json:"rotates_refresh_tokens,omitempty"`
	// AssumedExpiresIn is the lifetime in seconds to assume when a token response omits
	// expires_in; 0 means such a token does not expire (GitHub OAuth app tokens).
	AssumedExpiresIn int64 `yaml:"assumed_expires_in,omitempty" json:"assumed_expires_in,omitempty"`
	// AuthorizationParams are extra, fixed parameters of the authorization request
	// (Google: access_type=offline, prompt=consent). They can never replace a parameter
	// the flow sets itself (state, redirect_uri, code_challenge, ...).
	AuthorizationParams map[string]string `yaml:"authorization_params,omitempty" json:"authorization_params,omitempty"`

	// APIBaseURL is where the forwarding proxy sends API calls; empty where the host is
	// per account and learnt only from the token response (Salesforce instance_url).
	APIBaseURL string `yaml:"api_base_url,omitempty" json:"api_base_url,omitempty"`
	DocsURL    string `yaml:"docs_url,omitempty" json:"docs_url,omitempty"`
	// HealthCheckURL answers a GET with 2xx when an API key is valid (api_key providers).
	HealthCheckURL string `yaml:"health_check_url,omitempty" json:"health_check_url,omitempty"`
	// MinTLSVersion lowers the outbound TLS floor from 1.3 to "1.2" for a provider that
	// does not speak TLS 1.3 yet. Empty means the client's default.
	MinTLSVersion string `yaml:"min_tls_version,omitempty" json:"min_tls_version,omitempty"`
	// Pins are optional SPKI pins, "sha256/<base64>" (RFC 7469 section 2.4), checked
	// after normal chain verification on every call to the provider: some certificate
	// of the verified chain must carry one. List the old and the new key to rotate.
	Pins []string `yaml:"pins,omitempty" json:"pins,omitempty"`
	// StaticHeaders are added to every forwarded API call (Notion-Version,
	// anthropic-version). They never carry a credential.
	StaticHeaders map[string]string `yaml:"static_headers,omitempty" json:"static_headers,omitempty"`

	// API key injection (auth_mode api_key only).
	APIKeyAuth          APIKeyAuth `yaml:"api_key_auth,omitempty" json:"api_key_auth,omitempty"`
	APIKeyHeader        string     `yaml:"api_key_header,omitempty" json:"api_key_header,omitempty"`
	APIKeyFormat        string     `yaml:"api_key_format,omitempty" json:"api_key_format,omitempty"`
	APIKeyBasicUsername string     `yaml:"api_key_basic_username,omitempty" json:"api_key_basic_username,omitempty"`
}

// Catalog is the parsed, validated set of built-in provider templates. It is immutable:
// Get and All return copies.
type Catalog struct {
	byName map[string]Provider
	sorted []Provider
}

type catalogFile struct {
	Providers []Provider `yaml:"providers"`
}

// LoadCatalog parses the catalog embedded in the binary (providers.yaml).
func LoadCatalog() (*Catalog, error) {
	return ParseCatalog([]byte(embeddedProviders))
}

// ParseCatalog parses a catalog document strictly: a single YAML document with a
// "providers" list, no unknown or duplicate field, no duplicate name, every provider
// valid. It fills the defaults (scope_separator " ", api_key_format "{key}") before
// validating.
func ParseCatalog(data []byte) (*Catalog, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f catalogFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: parsing catalog: %w", ErrInvalidProvider, err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: catalog must be a single YAML document", ErrInvalidProvider)
	}
	if len(f.Providers) == 0 {
		return nil, fmt.Errorf("%w: catalog has no providers", ErrInvalidProvider)
	}
	c := &Catalog{byName: make(map[string]Provider, len(f.Providers))}
	for i, p := range f.Providers {
		p = p.withDefaults()
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("catalog entry %d: %w", i, err)
		}
		if _, dup := c.byName[p.Name]; dup {
			return nil, fmt.Errorf("%w: %q: duplicate name", ErrInvalidProvider, p.Name)
		}
		c.byName[p.Name] = p
		c.sorted = append(c.sorted, p)
	}
	slices.SortFunc(c.sorted, func(a, b Provider) int { return strings.Compare(a.Name, b.Name) })
	return c, nil
}

// Get returns a copy of the template called name.
func (c *Catalog) Get(name string) (Provider, bool) {
	p, ok := c.byName[name]
	if !ok {
		return Provider{}, false
	}
	return p.Clone(), true
}

// All returns copies of every template, sorted by name.
func (c *Catalog) All() []Provider {
	out := make([]Provider, len(c.sorted))
	for i, p := range c.sorted {
		out[i] = p.Clone()
	}
	return out
}

// Len is the number of templates.
func (c *Catalog) Len() int { return len(c.sorted) }

// Clone returns a deep copy of p (its slices and maps are not shared).
func (p Provider) Clone() Provider {
	p.DefaultScopes = slices.Clone(p.DefaultScopes)
	p.Pins = slices.Clone(p.Pins)
	p.AuthorizationParams = maps.Clone(p.AuthorizationParams)
	p.StaticHeaders = maps.Clone(p.StaticHeaders)
	return p
}

func (p Provider) withDefaults() Provider {
	if p.AuthMode == AuthModeOAuth2 && p.ScopeSeparator == "" {
		p.ScopeSeparator = " "
	}
	if p.AuthMode == AuthModeAPIKey && p.APIKeyAuth == APIKeyHeader && p.APIKeyFormat == "" {
		p.APIKeyFormat = "{key}"
	}
	return p
}

// JoinScopes joins scopes with the provider's separator (" " when unset).
func (p Provider) JoinScopes(scopes []string) string {
	sep := p.ScopeSeparator
	if sep == "" {
		sep = " "
	}
	return strings.Join(scopes, sep)
}

// RefreshTokenURL is the endpoint of the refresh_token grant: RefreshURL if set, else
// TokenURL.
func (p Provider) RefreshTokenURL() string {
	if p.RefreshURL != "" {
		return p.RefreshURL
	}
	return p.TokenURL
}

// Endpoint returns the x/oauth2 endpoint with the AuthStyle set explicitly from
// TokenAuthMethod. Placeholders must have been expanded.
func (p Provider) Endpoint() (oauth2.Endpoint, error) {
	if p.AuthMode != AuthModeOAuth2 {
		return oauth2.Endpoint{}, fmt.Errorf("%w: %q: not an oauth2 provider", ErrInvalidProvider, p.Name)
	}
	if len(p.Placeholders()) > 0 {
		return oauth2.Endpoint{}, fmt.Errorf("%w: %q: placeholders not expanded", ErrInvalidProvider, p.Name)
	}
	e := oauth2.Endpoint{AuthURL: p.AuthorizationURL, TokenURL: p.TokenURL}
	switch p.TokenAuthMethod {
	case ClientSecretBasic:
		e.AuthStyle = oauth2.AuthStyleInHeader
	case ClientSecretPost:
		e.AuthStyle = oauth2.AuthStyleInParams
	default:
		return oauth2.Endpoint{}, fmt.Errorf("%w: %q: unknown token_auth_method", ErrInvalidProvider, p.Name)
	}
	return e, nil
}

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

// urlFields lists a provider's URL fields by their YAML names.
func (p *Provider) urlFields() []struct {
	name string
	val  *string
} {
	return []struct {
		name string
		val  *string
	}{
		{"authorization_url", &p.AuthorizationURL},
		{"token_url", &p.TokenURL},
		{"refresh_url", &p.RefreshURL},
		{"revocation_url", &p.RevocationURL},
		{"issuer", &p.Issuer},
		{"api_base_url", &p.APIBaseURL},
		{"docs_url", &p.DocsURL},
		{"health_check_url", &p.HealthCheckURL},
	}
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
	switch p.AuthMode {
	case AuthModeOAuth2:
		return p.validateOAuth2(bad)
	case AuthModeAPIKey:
		return p.validateAPIKey(bad)
	default:
		return bad("auth_mode must be oauth2 or api_key")
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
	if p.HealthCheckURL != "" || p.APIKeyAuth != "" || p.APIKeyHeader != "" || p.APIKeyFormat != "" || p.APIKeyBasicUsername != "" {
		return bad("api_key_* and health_check_url are for api_key providers")
	}
	return nil
}

func (p Provider) validateAPIKey(bad func(string, ...any) error) error {
	if p.AuthorizationURL != "" || p.TokenURL != "" || p.RefreshURL != "" || p.RevocationURL != "" ||
		p.Issuer != "" || p.RequireIss || p.PKCE || p.RotatesRefreshTokens || p.AssumedExpiresIn != 0 ||
		len(p.DefaultScopes) > 0 || p.ScopeSeparator != "" || p.TokenAuthMethod != "" || len(p.AuthorizationParams) > 0 {
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
// or dot segment; placeholders (not allowed in docs_url) only as whole host labels
// followed by at least two literal labels.
func checkTemplateURL(raw string, isDocs bool) string {
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
	u, reason := strictURL(sub, urlRules{})
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
	if inHost != n {
		return "a placeholder may only be a whole label of the host"
	}
	if len(labels)-1-last < 2 {
		return "at least two fixed labels must follow the last placeholder in the host"
	}
	return ""
}

// Placeholders returns the names of the placeholders in p's URL fields, sorted.
func (p Provider) Placeholders() []string {
	set := map[string]struct{}{}
	for _, f := range p.urlFields() {
		for _, m := range placeholderRE.FindAllStringSubmatch(*f.val, -1) {
			set[m[1]] = struct{}{}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Expand returns p with every placeholder replaced by values[name]. Every placeholder
// needs a value, every value must name a placeholder, and every value must be a lowercase
// DNS label ([a-z0-9-], 1-63 characters, no leading or trailing hyphen), so that it can
// never change the host's registrable domain, add a path or a port. The result is
// validated. Errors name the placeholder, never the value.
func (p Provider) Expand(values map[string]string) (Provider, error) {
	names := p.Placeholders()
	for k := range values {
		if !slices.Contains(names, k) {
			return Provider{}, fmt.Errorf("%w: %q: no placeholder {%s}", ErrInvalidProvider, p.Name, k)
		}
	}
	out := p.Clone()
	for _, name := range names {
		v, ok := values[name]
		if !ok {
			return Provider{}, fmt.Errorf("%w: %q: placeholder {%s} needs a value", ErrInvalidProvider, p.Name, name)
		}
		if !dnsLabelRE.MatchString(v) {
			return Provider{}, fmt.Errorf("%w: %q: value of {%s} must be a lowercase DNS label", ErrInvalidProvider, p.Name, name)
		}
		for _, f := range out.urlFields() {
			*f.val = strings.ReplaceAll(*f.val, "{"+name+"}", v)
		}
	}
	if err := out.Validate(); err != nil {
		return Provider{}, err
	}
	return out, nil
}

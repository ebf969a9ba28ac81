package oauthflow

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/oauth2"

	"github.com/authpipe/authpipe-proxy/internal/webhookverify"
)

// The catalog is every catalog/*.yaml file, read in name order (core.yaml, then one file
// per category): each a document with a "providers" list; a name may appear once in all.
//
//go:embed catalog/*.yaml
var embeddedCatalog embed.FS

// ErrInvalidProvider is wrapped by every error of Provider.Validate, ParseCatalog and
// Provider.Expand.
var ErrInvalidProvider = errors.New("oauthflow: invalid provider")

// AuthMode is how a provider's credential is obtained.
type AuthMode string

// Auth modes.
const (
	AuthModeOAuth2 AuthMode = "oauth2"  // authorization code flow with PKCE
	AuthModeAPIKey AuthMode = "api_key" // the end user pastes a key
	// AuthModeBasic: a username and password, sealed, sent as HTTP Basic authentication.
	AuthModeBasic AuthMode = "basic"
	// AuthModeClientCredentials: access tokens minted with the client_credentials grant
	// (RFC 6749 section 4.4), by the provider's client or the connection's own.
	AuthModeClientCredentials AuthMode = "oauth2_client_credentials"
	// AuthModeJWTBearer: access tokens minted with a JWT assertion signed by the
	// connection's service-account key (RFC 7523 section 2.1).
	AuthModeJWTBearer AuthMode = "jwt_bearer"
	// AuthModeGitHubApp: GitHub App installation access tokens, minted with a JWT signed by
	// the app's private key (the provider's client secret); a connection is an installation.
	AuthModeGitHubApp AuthMode = "github_app"
)

// Minted reports whether the mode's access tokens are minted by the proxy on demand from
// a long-lived grant (client credentials, a service-account key, an app key) rather than
// obtained from an end user's authorization: no refresh token, no browser flow.
func (m AuthMode) Minted() bool {
	return m == AuthModeClientCredentials || m == AuthModeJWTBearer || m == AuthModeGitHubApp
}

// HasAccessToken reports whether the mode's connections hold an access token that expires
// and is refreshed or minted again (oauth2 and the minted modes).
func (m AuthMode) HasAccessToken() bool { return m == AuthModeOAuth2 || m.Minted() }

// TokenAuthMethod is how the client authenticates at the token endpoint (RFC 6749
// section 2.3.1; the names are those of RFC 7591). It is set for every provider, never
// auto-detected: x/oauth2's auto-detection retries with the secret in a second place.
type TokenAuthMethod string

// Token endpoint authentication methods.
const (
	ClientSecretBasic TokenAuthMethod = "client_secret_basic" // HTTP Basic
	ClientSecretPost  TokenAuthMethod = "client_secret_post"  // form parameters
	// PrivateKeyJWT: a client assertion signed with the client's private key (RFC 7523
	// section 2.2, OpenID Connect Core section 9); the "client secret" is that key (PEM).
	PrivateKeyJWT TokenAuthMethod = "private_key_jwt"
	// TLSClientAuth: mutual TLS with the client's certificate (RFC 8705 section 2.1); the
	// "client secret" is the certificate and its key (PEM).
	TLSClientAuth TokenAuthMethod = "tls_client_auth"
	// NoClientAuth: the client does not authenticate (a jwt_bearer grant whose assertion
	// is the only credential: Google service accounts).
	NoClientAuth TokenAuthMethod = "none"
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
	// RefreshTokenIdleTTL is how long in seconds an unused refresh token stays valid at
	// this provider (0: not known to lapse when idle): the refresher refreshes a grant
	// before three quarters of it have passed (a keep-alive, Provider.RefreshDue).
	RefreshTokenIdleTTL int64 `yaml:"refresh_token_idle_ttl,omitempty" json:"refresh_token_idle_ttl,omitempty"`
	// AuthorizationParams are extra, fixed parameters of the authorization request
	// (Google: access_type=offline, prompt=consent). They can never replace a parameter
	// the flow sets itself (state, redirect_uri, code_challenge, ...).
	AuthorizationParams map[string]string `yaml:"authorization_params,omitempty" json:"authorization_params,omitempty"`

	// Token request settings (token_settings.go): extra parameters of the code exchange
	// and of the refresh grant, the body format, where a non-standard response keeps its
	// tokens, and the response fields kept as connection metadata.
	TokenParams         map[string]string `yaml:"token_params,omitempty" json:"token_params,omitempty"`
	RefreshParams       map[string]string `yaml:"refresh_params,omitempty" json:"refresh_params,omitempty"`
	TokenRequestFormat  string            `yaml:"token_request_format,omitempty" json:"token_request_format,omitempty"`
	TokenResponseFields map[string]string `yaml:"token_response_fields,omitempty" json:"token_response_fields,omitempty"`
	MetadataFields      []MetadataField   `yaml:"metadata_fields,omitempty" json:"metadata_fields,omitempty"`

	// ConnectionConfig declares the parameters each connection fills in the URL fields'
	// placeholders (connection_config.go).
	ConnectionConfig []ConfigParam `yaml:"connection_config,omitempty" json:"connection_config,omitempty"`

	// APIBaseURL is where the forwarding proxy sends API calls; empty where the host is
	// per account and learnt only from the token response (Salesforce instance_url: a
	// metadata field with api_base).
	APIBaseURL string `yaml:"api_base_url,omitempty" json:"api_base_url,omitempty"`
	DocsURL    string `yaml:"docs_url,omitempty" json:"docs_url,omitempty"`
	// Categories place the provider in the catalog (Categories lists the allowed names).
	Categories []string `yaml:"categories,omitempty" json:"categories,omitempty"`
	// AssertionAudience is the aud of the JWTs the proxy signs for this provider (a
	// jwt_bearer assertion, a private_key_jwt client assertion) where the provider wants
	// something other than its token endpoint URL (Salesforce: https://login.salesforce.com).
	AssertionAudience string `yaml:"assertion_audience,omitempty" json:"assertion_audience,omitempty"`
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

	// Webhook is the signature scheme of the webhooks the provider sends
	// (POST /v1/inbound/{provider}/{connection_id} verifies it); nil when the catalog
	// declares none. The scheme is read from the catalog entry, never from a workspace.
	Webhook *webhookverify.Scheme `yaml:"webhook,omitempty" json:"webhook,omitempty"`

	// config are the connection_config values of the connection ForConnection filled the
	// provider for (ConfigValue); never serialized.
	config map[string]string
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

// LoadCatalog parses the catalog embedded in the binary (catalog/*.yaml).
func LoadCatalog() (*Catalog, error) {
	names, err := fs.Glob(embeddedCatalog, "catalog/*.yaml")
	if err != nil {
		return nil, err
	}
	docs := make([][]byte, 0, len(names))
	for _, n := range names { // fs.Glob sorts
		b, err := embeddedCatalog.ReadFile(n)
		if err != nil {
			return nil, err
		}
		docs = append(docs, b)
	}
	return ParseCatalog(docs...)
}

// ParseCatalog parses catalog documents strictly: each a single YAML document with a
// "providers" list, no unknown or duplicate field, no name twice in all of them, every provider
// valid. It fills the defaults (scope_separator " ", api_key_format "{key}") before
// validating.
func ParseCatalog(docs ...[]byte) (*Catalog, error) {
	var all []Provider
	for _, data := range docs {
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
		all = append(all, f.Providers...)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: catalog has no providers", ErrInvalidProvider)
	}
	c := &Catalog{byName: make(map[string]Provider, len(all))}
	for i, p := range all {
		p = p.withDefaults()
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("catalog entry %d: %w", i, err)
		}
		if p.Webhook != nil {
			if err := p.Webhook.Validate(); err != nil {
				return nil, fmt.Errorf("%w: %q: webhook: %w", ErrInvalidProvider, p.Name, err)
			}
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
	p.Categories = slices.Clone(p.Categories)
	p.Pins = slices.Clone(p.Pins)
	p.AuthorizationParams = maps.Clone(p.AuthorizationParams)
	p.StaticHeaders = maps.Clone(p.StaticHeaders)
	if p.Webhook != nil {
		w := *p.Webhook
		p.Webhook = &w
	}
	p.TokenParams = maps.Clone(p.TokenParams)
	p.RefreshParams = maps.Clone(p.RefreshParams)
	p.TokenResponseFields = maps.Clone(p.TokenResponseFields)
	p.MetadataFields = slices.Clone(p.MetadataFields)
	for i := range p.MetadataFields {
		p.MetadataFields[i].Origins = slices.Clone(p.MetadataFields[i].Origins)
	}
	p.config = maps.Clone(p.config)
	p.ConnectionConfig = slices.Clone(p.ConnectionConfig)
	for i := range p.ConnectionConfig {
		p.ConnectionConfig[i].Enum = slices.Clone(p.ConnectionConfig[i].Enum)
	}
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

package oauthflow

import (
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/authpipe/authpipe-proxy/internal/problem"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"golang.org/x/oauth2"
)

func loadCatalog(t *testing.T) *Catalog {
	t.Helper()
	c, err := LoadCatalog()
	require.NoError(t, err)
	return c
}

func TestLoadCatalogCounts(t *testing.T) {
	c := loadCatalog(t)
	all := c.All()
	require.Equal(t, c.Len(), len(all))
	var oauth, apiKey int
	for _, p := range all {
		switch p.AuthMode {
		case AuthModeOAuth2:
			oauth++
		case AuthModeAPIKey:
			apiKey++
		}
	}
	require.GreaterOrEqual(t, oauth, 60, "oauth2 providers")
	require.GreaterOrEqual(t, apiKey, 5, "api_key providers")
	require.True(t, slices.IsSortedFunc(all, func(a, b Provider) int { return strings.Compare(a.Name, b.Name) }))
	names := map[string]bool{}
	for _, p := range all {
		require.False(t, names[p.Name], "duplicate %s", p.Name)
		names[p.Name] = true
	}
}

// TestCatalogEntries checks every built-in entry on its own, beyond Validate, with
// independent code (net/url here, not the package's strictURL).
func TestCatalogEntries(t *testing.T) {
	for _, p := range loadCatalog(t).All() {
		t.Run(p.Name, func(t *testing.T) {
			require.NoError(t, p.Validate())
			require.NotEmpty(t, p.DocsURL, "every built-in entry links its documentation")

			// Expand placeholders with a sample label, then look at every URL.
			values := map[string]string{}
			for _, ph := range p.Placeholders() {
				values[ph] = sampleConfigValue(t, p, ph)
			}
			e, err := p.Expand(values)
			require.NoError(t, err)
			require.Empty(t, e.Placeholders())
			for field, raw := range map[string]string{
				"authorization_url": e.AuthorizationURL, "token_url": e.TokenURL,
				"refresh_url": e.RefreshURL, "revocation_url": e.RevocationURL,
				"issuer": e.Issuer, "api_base_url": e.APIBaseURL, "docs_url": e.DocsURL,
				"health_check_url": e.HealthCheckURL,
			} {
				if raw == "" {
					continue
				}
				u, err := url.Parse(raw)
				require.NoError(t, err, field)
				require.Equal(t, "https", u.Scheme, field)
				require.NotEmpty(t, u.Host, field)
				require.Nil(t, u.User, field)
				require.Empty(t, u.Fragment, field)
				require.NotContains(t, raw, "#", field)
				require.Equal(t, raw, u.String(), field)
				require.Equal(t, strings.ToLower(u.Host), u.Host, field)
			}

			switch p.AuthMode {
			case AuthModeOAuth2:
				require.NotEmpty(t, p.AuthorizationURL)
				require.NotEmpty(t, p.TokenURL)
				require.Contains(t, []TokenAuthMethod{ClientSecretBasic, ClientSecretPost}, p.TokenAuthMethod)
				require.Contains(t, []string{" ", ","}, p.ScopeSeparator)
				require.Empty(t, p.HealthCheckURL)
				ep, err := e.Endpoint()
				require.NoError(t, err)
				require.NotEqual(t, oauth2.AuthStyleAutoDetect, ep.AuthStyle, "auth style must be explicit")
				require.Equal(t, e.AuthorizationURL, ep.AuthURL)
				require.Equal(t, e.TokenURL, ep.TokenURL)
				if p.RequireIss {
					require.NotEmpty(t, p.Issuer)
				}
				if p.Issuer != "" {
					require.True(t, strings.HasPrefix(p.Issuer, "https://"))
					require.NotContains(t, p.Issuer, "?")
				}
			case AuthModeAPIKey:
				require.NotEmpty(t, p.APIBaseURL)
				require.Empty(t, p.AuthorizationURL)
				require.Empty(t, p.TokenURL)
				require.Empty(t, p.RevocationURL)
				require.Empty(t, p.Issuer)
				switch p.APIKeyAuth {
				case APIKeyHeader:
					require.NotEmpty(t, p.APIKeyHeader)
					require.Equal(t, 1, strings.Count(p.APIKeyFormat, "{key}"))
				case APIKeyBasic:
					require.Empty(t, p.APIKeyHeader)
				default:
					t.Fatalf("api_key_auth %q", p.APIKeyAuth)
				}
				_, err := e.Endpoint()
				require.ErrorIs(t, err, ErrInvalidProvider)
			case AuthModeBasic:
				require.NotEmpty(t, p.APIBaseURL)
				require.Empty(t, p.TokenURL)
				require.Empty(t, p.TokenAuthMethod)
				_, err := e.Endpoint()
				require.ErrorIs(t, err, ErrInvalidProvider)
			case AuthModeClientCredentials, AuthModeJWTBearer, AuthModeGitHubApp:
				require.True(t, p.AuthMode.Minted())
				require.NotEmpty(t, p.TokenURL)
				require.Empty(t, p.AuthorizationURL, "a minted mode has no browser flow")
				require.Empty(t, p.RefreshURL)
				require.False(t, p.PKCE)
				require.False(t, p.RotatesRefreshTokens)
				require.Empty(t, p.HealthCheckURL)
				switch p.AuthMode {
				case AuthModeClientCredentials:
					require.Contains(t, []TokenAuthMethod{ClientSecretBasic, ClientSecretPost, PrivateKeyJWT, TLSClientAuth}, p.TokenAuthMethod)
				case AuthModeJWTBearer:
					require.Contains(t, []TokenAuthMethod{NoClientAuth, ClientSecretBasic, ClientSecretPost}, p.TokenAuthMethod)
				case AuthModeGitHubApp:
					require.Empty(t, p.TokenAuthMethod)
					require.Contains(t, p.Placeholders(), "installation_id")
					require.NotEmpty(t, p.APIBaseURL)
					// A connection is an installation: its id fills one path segment of the
					// token URL; tokens go to the API base and are revoked there.
					require.Contains(t, p.TokenURL, "/app/installations/{installation_id}/access_tokens")
					require.Empty(t, p.RevocationURL)
					require.Equal(t, GitHubAPIVersion, p.StaticHeaders["X-GitHub-Api-Version"])
					require.Equal(t, e.APIBaseURL+"/installation/token", e.GitHubAppRevocationURL())
				}
				if p.AssertionAudience != "" {
					require.True(t, p.AuthMode == AuthModeJWTBearer || p.TokenAuthMethod == PrivateKeyJWT)
				}
				_, err := e.Endpoint()
				require.ErrorIs(t, err, ErrInvalidProvider, "no x/oauth2 code-flow endpoint")
			default:
				t.Fatalf("auth_mode %q", p.AuthMode)
			}
		})
	}
}

// sampleConfigValue is a value of the connection_config parameter name that its pattern or
// enum accepts (a tenant label, a numeric account id).
func sampleConfigValue(t *testing.T, p Provider, name string) string {
	t.Helper()
	for _, c := range p.ConnectionConfig {
		if c.Name != name {
			continue
		}
		if len(c.Enum) > 0 {
			return c.Enum[0]
		}
		for _, v := range []string{"acme", "12345", "acme-1", "na1"} {
			if c.Pattern == "" || regexp.MustCompile(`^(?:`+c.Pattern+`)$`).MatchString(v) {
				return v
			}
		}
	}
	t.Fatalf("no sample value for %s", name)
	return ""
}

// TestCatalogKnownEntries pins entries that the rest of the system and the API examples
// rely on, so that an edit of catalog/*.yaml that breaks them is noticed.
func TestCatalogKnownEntries(t *testing.T) {
	c := loadCatalog(t)
	get := func(name string) Provider {
		p, ok := c.Get(name)
		require.True(t, ok, name)
		return p
	}

	gh := get("github")
	require.Equal(t, "GitHub", gh.DisplayName)
	require.Equal(t, "https://github.com/login/oauth/authorize", gh.AuthorizationURL)
	require.Equal(t, "https://github.com/login/oauth/access_token", gh.TokenURL)
	require.Equal(t, "https://api.github.com", gh.APIBaseURL)
	require.Equal(t, int64(0), gh.AssumedExpiresIn)
	require.True(t, gh.PKCE)

	g := get("google")
	require.Equal(t, "https://accounts.google.com", g.Issuer)
	require.True(t, g.RequireIss)
	require.Equal(t, "https://oauth2.googleapis.com/revoke", g.RevocationURL)
	require.Equal(t, map[string]string{"access_type": "offline", "prompt": "consent"}, g.AuthorizationParams)

	ms := get("microsoft")
	require.Contains(t, ms.AuthorizationURL, "/common/oauth2/v2.0/authorize")
	require.Empty(t, ms.Issuer, "the common endpoint has no single issuer")

	slack := get("slack")
	require.Equal(t, "https://slack.com/api/oauth.v2.access", slack.TokenURL)
	require.Equal(t, ",", slack.ScopeSeparator)
	require.Equal(t, "chat:write,users:read", slack.JoinScopes([]string{"chat:write", "users:read"}))

	require.Equal(t, []string{"shop"}, get("shopify").Placeholders())
	require.Equal(t, []string{"subdomain"}, get("zendesk").Placeholders())
	require.Equal(t, "https://api.figma.com/v1/oauth/refresh", get("figma").RefreshTokenURL())
	require.Equal(t, get("github").TokenURL, get("github").RefreshTokenURL())

	stripe := get("stripe")
	require.Equal(t, AuthModeAPIKey, stripe.AuthMode)
	require.Equal(t, "Authorization", stripe.APIKeyHeader)
	require.Equal(t, "Bearer {key}", stripe.APIKeyFormat)
	require.Equal(t, "{key}", get("anthropic").APIKeyFormat, "default format filled in")

	_, ok := c.Get("trello")
	require.False(t, ok, "OAuth 1.0a providers are not in the catalog")
	_, ok = c.Get("")
	require.False(t, ok)
}

func TestCatalogReturnsCopies(t *testing.T) {
	c := loadCatalog(t)
	p, _ := c.Get("google")
	p.DefaultScopes[0] = "mutated"
	p.AuthorizationParams["prompt"] = "none"
	p.TokenURL = "https://evil.example/token"
	all := c.All()
	all[0].Name = "mutated"
	for i := range all {
		if all[i].Name == "github" {
			all[i].StaticHeaders["X-GitHub-Api-Version"] = "mutated"
		}
	}

	again, _ := c.Get("google")
	require.Equal(t, "openid", again.DefaultScopes[0])
	require.Equal(t, "consent", again.AuthorizationParams["prompt"])
	require.Equal(t, "https://oauth2.googleapis.com/token", again.TokenURL)
	require.NotEqual(t, "mutated", c.All()[0].Name)
	gh, _ := c.Get("github")
	require.Equal(t, "2022-11-28", gh.StaticHeaders["X-GitHub-Api-Version"])
}

func TestProviderJSONMatchesAPI(t *testing.T) {
	p, ok := loadCatalog(t).Get("github")
	require.True(t, ok)
	b, err := json.Marshal(p)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	// The names of GET /v1/catalog in API.md.
	for _, k := range []string{"name", "display_name", "auth_mode", "authorization_url", "token_url", "pkce", "api_base_url", "docs_url"} {
		require.Contains(t, m, k)
	}
	require.Equal(t, "oauth2", m["auth_mode"])
	require.Equal(t, true, m["pkce"])

	g, _ := loadCatalog(t).Get("google")
	b, err = json.Marshal(g)
	require.NoError(t, err)
	require.Contains(t, string(b), `"revocation_url":"https://oauth2.googleapis.com/revoke"`)
	require.Contains(t, string(b), `"require_iss":true`)

	// pkce:false is still present (not omitted).
	hs, _ := loadCatalog(t).Get("hubspot")
	b, err = json.Marshal(hs)
	require.NoError(t, err)
	require.Contains(t, string(b), `"pkce":false`)
}

const validEntry = `
  - name: acme
    display_name: Acme
    auth_mode: oauth2
    authorization_url: https://auth.acme.example/authorize
    token_url: https://auth.acme.example/token
    token_auth_method: client_secret_basic
    pkce: true
`

func TestParseCatalogAcceptsMinimal(t *testing.T) {
	c, err := ParseCatalog([]byte("providers:" + validEntry))
	require.NoError(t, err)
	p, ok := c.Get("acme")
	require.True(t, ok)
	require.Equal(t, " ", p.ScopeSeparator, "default filled in")
	require.Equal(t, "a b", p.JoinScopes([]string{"a", "b"}))
}

func TestParseCatalogRejects(t *testing.T) {
	entry := func(replace ...string) string {
		return "providers:" + strings.NewReplacer(replace...).Replace(validEntry)
	}
	add := func(lines string) string { return "providers:" + validEntry + lines }
	apiKey := `
  - name: key
    display_name: Key
    auth_mode: api_key
    api_base_url: https://api.key.example
    api_key_auth: header
    api_key_header: Authorization
`
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"empty document", "", "parsing catalog"},
		{"no providers", "providers: []", "no providers"},
		{"not a list", "providers: {}", "parsing catalog"},
		{"unknown top-level field", "providers:" + validEntry + "extra: 1\n", "parsing catalog"},
		{"unknown provider field", add("    client_secret: hunter2\n"), "parsing catalog"},
		{"duplicate field", add("    pkce: false\n"), "parsing catalog"},
		{"two documents", "providers:" + validEntry + "---\nproviders: []\n", "single YAML document"},
		{"duplicate name", "providers:" + validEntry + validEntry, "duplicate name"},
		{"uppercase name", entry("name: acme", "name: Acme"), "name must be"},
		{"name with underscore", entry("name: acme", "name: ac_me"), "name must be"},
		{"missing display name", entry("display_name: Acme", "display_name: \"\""), "display_name"},
		{"unknown auth mode", entry("auth_mode: oauth2", "auth_mode: oauth1"), "auth_mode"},
		{"missing token url", entry("    token_url: https://auth.acme.example/token\n", ""), "token_url"},
		{"missing authorization url", entry("    authorization_url: https://auth.acme.example/authorize\n", ""), "authorization_url"},
		{"unknown token auth", entry("client_secret_basic", "private_key_jwt"), "token_auth_method"},
		{"missing token auth", entry("    token_auth_method: client_secret_basic\n", ""), "token_auth_method"},
		{"plain http", entry("https://auth.acme.example/token", "http://auth.acme.example/token"), "token_url"},
		{"userinfo", entry("https://auth.acme.example/token", "https://user@auth.acme.example/token"), "userinfo"},
		{"fragment", entry("https://auth.acme.example/token", "https://auth.acme.example/token#x"), "fragment"},
		{"uppercase host", entry("https://auth.acme.example/token", "https://AUTH.acme.example/token"), "lowercase"},
		{"relative url", entry("https://auth.acme.example/token", "/token"), "token_url"},
		{"http revocation", add("    revocation_url: http://auth.acme.example/revoke\n"), "revocation_url"},
		{"http issuer", add("    issuer: http://auth.acme.example\n"), "issuer"},
		{"issuer with query", add("    issuer: https://auth.acme.example/?x=1\n"), "issuer"},
		{"require_iss without issuer", add("    require_iss: true\n"), "require_iss"},
		{"bad separator", add("    scope_separator: \";\"\n"), "scope_separator"},
		{"scope with space", add("    default_scopes: [\"a b\"]\n"), "default_scopes"},
		{"duplicate scope", add("    default_scopes: [a, a]\n"), "duplicate scope"},
		{"reserved auth param state", add("    authorization_params: {state: fixed}\n"), "set by the flow"},
		{"reserved auth param redirect", add("    authorization_params: {Redirect_URI: https://evil.example/}\n"), "set by the flow"},
		{"reserved auth param challenge", add("    authorization_params: {code_challenge_method: plain}\n"), "set by the flow"},
		{"auth param control char", add("    authorization_params: {prompt: \"a\\nb\"}\n"), "authorization_params"},
		{"negative expiry", add("    assumed_expires_in: -1\n"), "assumed_expires_in"},
		{"bad tls", add("    min_tls_version: \"1.0\"\n"), "min_tls_version"},
		{"pin without sha256/", add("    pins: [\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"]\n"), "pins"},
		{"pin of 16 bytes", add("    pins: [\"sha256/AAAAAAAAAAAAAAAAAAAAAA==\"]\n"), "pins"},
		{"static authorization header", add("    static_headers: {Authorization: Bearer x}\n"), "may not be set"},
		{"static cookie header", add("    static_headers: {cookie: a=b}\n"), "may not be set"},
		{"static header CRLF", add("    static_headers: {X-A: \"a\\r\\nX-B: c\"}\n"), "static_headers"},
		{"static header bad name", add("    static_headers: {\"X A\": b}\n"), "static_headers"},
		{"health check on oauth2", add("    health_check_url: https://api.acme.example/ok\n"), "api_key"},
		{"api key field on oauth2", add("    api_key_header: X-Key\n"), "api_key"},
		{"placeholder in path undeclared", entry("https://auth.acme.example/token", "https://auth.acme.example/{tenant}/token"), "not declared in connection_config"},
		{"placeholder in query", entry("https://auth.acme.example/token", "https://auth.acme.example/token?t={tenant}"), "whole label of the host or a whole segment"},
		{"placeholder part of segment", entry("https://auth.acme.example/token", "https://auth.acme.example/t-{tenant}/token"), "whole label of the host or a whole segment"},
		{"placeholder before public suffix", entry("https://auth.acme.example/token", "https://{shop}.co.uk/token"), "registrable domain"},
		{"placeholder as host", entry("https://auth.acme.example/token", "https://{host}/token"), "two fixed labels"},
		{"placeholder before tld", entry("https://auth.acme.example/token", "https://auth.{domain}.example/token"), "two fixed labels"},
		{"placeholder partial label", entry("https://auth.acme.example/token", "https://auth-{t}.acme.example/token"), "whole label"},
		{"placeholder uppercase", entry("https://auth.acme.example/token", "https://{Shop}.acme.example/token"), "placeholder"},
		{"placeholder unclosed", entry("https://auth.acme.example/token", "https://{shop.acme.example/token"), "placeholder"},
		{"placeholder in docs", add("    docs_url: https://{shop}.acme.example/docs\n"), "not allowed here"},
		{"reserved marker text", entry("https://auth.acme.example/token", "https://x-placeholder-x.acme.example/token"), "reserved"},
		{"api_key with token url", "providers:" + apiKey + "    token_url: https://api.key.example/token\n", "oauth2 fields"},
		{"api_key with pkce", "providers:" + apiKey + "    pkce: true\n", "oauth2 fields"},
		{"api_key without base", "providers:" + strings.Replace(apiKey, "    api_base_url: https://api.key.example\n", "", 1), "api_base_url"},
		{"api_key bad auth", "providers:" + strings.Replace(apiKey, "api_key_auth: header", "api_key_auth: query", 1), "api_key_auth"},
		{"api_key format without key", "providers:" + apiKey + "    api_key_format: Bearer\n", "{key}"},
		{"api_key format twice", "providers:" + apiKey + "    api_key_format: \"{key}{key}\"\n", "{key}"},
		{"api_key header injection", "providers:" + apiKey + "    api_key_format: \"{key}\\r\\nX: y\"\n", "{key}"},
		{"api_key static header same as key header", "providers:" + strings.Replace(apiKey, "api_key_header: Authorization", "api_key_header: X-Token", 1) + "    static_headers: {x-token: a}\n", "may not be set"},
		{"basic with header", "providers:" + strings.Replace(apiKey, "api_key_auth: header", "api_key_auth: basic", 1), "api_key_auth header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCatalog([]byte(tc.doc))
			require.ErrorIs(t, err, ErrInvalidProvider)
			require.Contains(t, err.Error(), tc.want)
			require.Nil(t, c)
		})
	}
}

// TestCatalogYAMLRoundTrip: marshalling the parsed catalog and parsing it again gives the
// same providers, so the yaml tags and the defaults agree.
func TestCatalogYAMLRoundTrip(t *testing.T) {
	c := loadCatalog(t)
	out, err := yaml.Marshal(catalogFile{Providers: c.All()})
	require.NoError(t, err)
	again, err := ParseCatalog(out)
	require.NoError(t, err)
	require.Equal(t, c.All(), again.All())
}

func TestExpand(t *testing.T) {
	c := loadCatalog(t)
	shop, _ := c.Get("shopify")
	e, err := shop.Expand(map[string]string{"shop": "acme-store"})
	require.NoError(t, err)
	require.Equal(t, "https://acme-store.myshopify.com/admin/oauth/authorize", e.AuthorizationURL)
	require.Equal(t, "https://acme-store.myshopify.com/admin/oauth/access_token", e.TokenURL)
	require.Equal(t, "https://acme-store.myshopify.com/admin/api", e.APIBaseURL)
	require.Contains(t, shop.AuthorizationURL, "{shop}", "the template is unchanged")

	_, err = shop.Endpoint()
	require.ErrorIs(t, err, ErrInvalidProvider, "placeholders must be expanded first")

	okta, _ := c.Get("okta")
	eo, err := okta.Expand(map[string]string{"org": "dev-123456"})
	require.NoError(t, err)
	require.Equal(t, "https://dev-123456.okta.com/oauth2/default", eo.Issuer)

	for _, bad := range []string{"", "evil.com", "evil.com/x", "a/b", "ACME", "-acme", "acme-", "a_b", "a@b", "a:1",
		"x%2ecom", "a b", "b\u00fccher", strings.Repeat("a", 64), "evil.com#", "..", "{x}"} {
		_, err := shop.Expand(map[string]string{"shop": bad})
		require.ErrorIs(t, err, problem.ErrInvalidConnectionConfig, "%q", bad)
		if bad != "" {
			require.NotContains(t, err.Error(), bad)
		}
	}
	var pr *problem.Problem
	_, err = shop.Expand(nil)
	require.ErrorIs(t, err, problem.ErrInvalidConnectionConfig)
	require.ErrorAs(t, err, &pr)
	require.Equal(t, "shop", pr.Errors[0].Field)
	_, err = shop.Expand(map[string]string{"shop": "acme", "tenant": "x"})
	require.ErrorIs(t, err, problem.ErrInvalidConnectionConfig)

	gh, _ := c.Get("github")
	same, err := gh.Expand(nil)
	require.NoError(t, err)
	require.Equal(t, gh, same)
}

// FuzzParseCatalog: ParseCatalog never panics, and whatever it accepts is a set of
// uniquely named providers that each pass Validate and whose URLs are https.
func FuzzParseCatalog(f *testing.F) {
	// A few real entries of every shape (the whole catalog is too slow a seed to mutate).
	c, err := LoadCatalog()
	require.NoError(f, err)
	var some []Provider
	for _, name := range []string{"github", "google", "shopify", "figma", "stripe", "twilio", "mailgun"} {
		p, ok := c.Get(name)
		require.True(f, ok)
		some = append(some, p)
	}
	seed, err := yaml.Marshal(catalogFile{Providers: some})
	require.NoError(f, err)
	f.Add(string(seed))
	f.Add("providers:" + validEntry)
	f.Add("providers:\n  - name: s\n    display_name: S\n    auth_mode: oauth2\n    authorization_url: https://{shop}.a.example/x\n    token_url: https://{shop}.a.example/t\n    token_auth_method: client_secret_post\n")
	f.Add("providers:\n  - name: k\n    display_name: K\n    auth_mode: api_key\n    api_base_url: https://k.example\n    api_key_auth: basic\n")
	f.Add("providers: [{name: a, auth_mode: oauth2}]")
	f.Add("providers:\n  - &a {name: x}\n  - *a\n")
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := ParseCatalog([]byte(doc))
		if err != nil {
			if c != nil {
				t.Fatal("catalog returned with an error")
			}
			return
		}
		seen := map[string]bool{}
		for _, p := range c.All() {
			if err := p.Validate(); err != nil {
				t.Fatalf("accepted provider %q fails Validate: %v", p.Name, err)
			}
			if seen[p.Name] {
				t.Fatalf("duplicate name %q accepted", p.Name)
			}
			seen[p.Name] = true
			got, ok := c.Get(p.Name)
			if !ok || got.Name != p.Name {
				t.Fatalf("Get(%q) failed", p.Name)
			}
			for _, raw := range []string{p.AuthorizationURL, p.TokenURL, p.RefreshURL, p.RevocationURL, p.Issuer, p.APIBaseURL, p.DocsURL, p.HealthCheckURL} {
				if raw != "" && !strings.HasPrefix(raw, "https://") {
					t.Fatalf("accepted non-https URL in %q", p.Name)
				}
			}
		}
	})
}

func TestParseCatalogPins(t *testing.T) {
	pinA, pinB := "sha256/"+strings.Repeat("A", 43)+"=", "sha256/"+strings.Repeat("B", 43)+"="
	c, err := ParseCatalog([]byte("providers:" + validEntry + "    min_tls_version: \"1.2\"\n    pins: [\"" + pinA + "\", \"" + pinB + "\"]\n"))
	require.NoError(t, err)
	p, ok := c.Get("acme")
	require.True(t, ok)
	require.Equal(t, []string{pinA, pinB}, p.Pins, "several pins, for rotation")
	require.Equal(t, "1.2", p.MinTLSVersion)
	p.Pins[0] = "changed"
	again, _ := c.Get("acme")
	require.Equal(t, pinA, again.Pins[0], "Get returns a deep copy")
	b, err := json.Marshal(again)
	require.NoError(t, err)
	require.Contains(t, string(b), `"pins":["`+pinA)
}

// TestCatalogCoverage: the catalog has at least 300 entries (issue 20), every entry links
// the documentation it was checked against and sits in at least one category, and every auth
// mode has entries.
func TestCatalogCoverage(t *testing.T) {
	c := loadCatalog(t)
	require.GreaterOrEqual(t, c.Len(), 300, "catalog entries")
	modes := map[AuthMode]int{}
	for _, p := range c.All() {
		require.NotEmpty(t, p.DocsURL, "%s: docs_url", p.Name)
		require.NotEmpty(t, p.Categories, "%s: categories", p.Name)
		for _, cat := range p.Categories {
			require.Contains(t, Categories, cat, p.Name)
		}
		modes[p.AuthMode]++
	}
	for _, m := range AuthModes {
		require.Positive(t, modes[m], "no %s entry in the catalog", m)
	}
	require.Len(t, modes, len(AuthModes), "every entry's mode is one of AuthModes")
}

package providers

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// Build assembles and validates a provider: the template (if any) with the overrides,
// the workspace's fields and the defaults (the template's default scopes; for oauth2
// the proxy's own callback URL), then every check of validate. It changes nothing. The
// providers API and the import both call it.
func (s *Service) Build(r Request) (Config, error) {
	if err := CheckKey(r.Key); err != nil {
		return Config{}, err
	}
	cfg, err := s.merge(r.Key, r.Template, r.Overrides)
	if err != nil {
		return Config{}, err
	}
	cfg.Template, cfg.ClientID, cfg.ReturnURLs = r.Template, r.ClientID, r.ReturnURLs
	cfg.Scopes = r.Scopes
	if cfg.Scopes == nil {
		cfg.Scopes = cfg.DefaultScopes
	}
	cfg.CallbackURLs = r.CallbackURLs
	if cfg.CallbackURLs == nil && cfg.AuthMode == oauthflow.AuthModeOAuth2 {
		cfg.CallbackURLs = []string{s.set.PublicURL + "/v1/oauth/callback"}
	}
	if err := s.validate(&cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// merge starts from the template (if any) and applies the overrides that are not the
// workspace's fields.
func (s *Service) merge(key, template string, overrides map[string]json.RawMessage) (Config, error) {
	merged := map[string]json.RawMessage{}
	if template != "" {
		t, ok := s.catalog.Get(template)
		if !ok {
			return Config{}, problem.ErrInvalidRequest.WithField("template", "no such template in the catalog")
		}
		b, _ := json.Marshal(t)
		_ = json.Unmarshal(b, &merged)
	}
	for k, v := range overrides {
		if !slices.Contains(workspaceFields, k) && k != "webhook" { // the provider's scheme is the catalog's (package inbound)
			merged[k] = v
		}
	}
	// client_auth (API.md "Token request settings") is the API's name of token_auth_method.
	if v, ok := overrides["client_auth"]; ok {
		if old, both := overrides["token_auth_method"]; both && string(old) != string(v) {
			return Config{}, problem.ErrInvalidRequest.WithField("client_auth", "differs from token_auth_method")
		}
		merged["token_auth_method"] = v
		delete(merged, "client_auth")
	}
	b, _ := json.Marshal(merged)
	var cfg Config
	if err := json.Unmarshal(b, &cfg.Provider); err != nil {
		return Config{}, problem.ErrInvalidRequest.WithDetail("a provider field has the wrong type")
	}
	cfg.Name = key
	if cfg.DisplayName == "" {
		cfg.DisplayName = key
	}
	if cfg.AuthMode == "" {
		cfg.AuthMode = oauthflow.AuthModeOAuth2
	}
	return cfg, nil
}

// validate checks every URL of a provider: allowlists must be exact, absolute URLs (400
// invalid_callback_url); endpoint URLs must be well-formed and must not point at private
// addresses unless the operator allowed them (400 unsafe_url).
func (s *Service) validate(cfg *Config) error {
	switch cfg.AuthMode {
	case oauthflow.AuthModeOAuth2, oauthflow.AuthModeAPIKey, oauthflow.AuthModeBasic,
		oauthflow.AuthModeClientCredentials, oauthflow.AuthModeJWTBearer, oauthflow.AuthModeGitHubApp:
	default:
		return problem.ErrInvalidRequest.WithField("auth_mode", "oauth2, api_key, basic, oauth2_client_credentials, jwt_bearer or github_app")
	}
	if err := cfg.Provider.ValidateMode(); err != nil { // what the machine modes require and forbid
		return problem.ErrInvalidRequest.WithDetail(strings.TrimPrefix(err.Error(), oauthflow.ErrInvalidProvider.Error()+": "))
	}
	if cfg.ClientID == "" && cfg.AuthMode != oauthflow.AuthModeOAuth2 && cfg.Provider.NeedsWorkspaceClient() {
		return problem.ErrInvalidRequest.WithField("client_id", "required for "+string(cfg.AuthMode)+" providers")
	}
	for _, list := range [][]string{cfg.CallbackURLs, cfg.ReturnURLs} {
		if err := oauthflow.ValidateAllowlist(list, s.set.URLs.Dev); err != nil {
			return problem.ErrInvalidCallbackURL.WithDetail(err.Error())
		}
	}
	endpoints := map[string]string{
		"authorization_url": cfg.AuthorizationURL, "token_url": cfg.TokenURL, "refresh_url": cfg.RefreshURL,
		"revocation_url": cfg.RevocationURL, "api_base_url": cfg.APIBaseURL, "health_check_url": cfg.HealthCheckURL,
	}
	if cfg.AuthMode == oauthflow.AuthModeGitHubApp && cfg.ClientID == "" {
		return problem.ErrInvalidRequest.WithField("client_id", "required for github_app providers: the app's Client ID or App ID")
	}
	if cfg.AuthMode == oauthflow.AuthModeOAuth2 {
		if cfg.AuthorizationURL == "" || cfg.TokenURL == "" {
			return problem.ErrInvalidRequest.WithDetail("an oauth2 provider needs authorization_url and token_url (or a template)")
		}
		if cfg.ClientID == "" {
			return problem.ErrInvalidRequest.WithField("client_id", "required for oauth2 providers")
		}
		if len(cfg.CallbackURLs) == 0 {
			return problem.ErrInvalidCallbackURL.WithDetail("at least one callback URL is required")
		}
	}
	if err := cfg.Provider.ValidateSettings(); err != nil { // placeholders, connection_config, token settings
		return problem.ErrInvalidRequest.WithDetail(strings.TrimPrefix(err.Error(), oauthflow.ErrInvalidProvider.Error()+": "))
	}
	for field, raw := range endpoints {
		if raw == "" {
			continue
		}
		if err := s.set.URLs.Check(oauthflow.SampleURL(raw)); err != nil {
			if errors.Is(err, outbound.ErrUnsafeURL) {
				return problem.ErrUnsafeURL.WithField(field, "points at a private, loopback or link-local address")
			}
			return problem.ErrInvalidRequest.WithField(field, err.Error())
		}
	}
	if _, err := tlsutil.ParseTLSVersion(cfg.MinTLSVersion); err != nil { // transport security (docs/security.md)
		return problem.ErrInvalidRequest.WithField("min_tls_version", `"1.2" or "1.3"`)
	}
	if err := tlsutil.ValidatePins(cfg.Pins); err != nil {
		return problem.ErrInvalidRequest.WithField("pins", err.Error())
	}
	if cfg.Issuer != "" {
		if u, err := url.Parse(cfg.Issuer); err != nil || u.Scheme != "https" && !s.set.URLs.Dev || u.Host == "" {
			return problem.ErrInvalidRequest.WithField("issuer", "must be an absolute https URL")
		}
	}
	return nil
}

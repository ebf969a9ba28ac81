package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// ProviderConfig is a provider as configured in a workspace: a catalog entry's fields
// (from a template, overridden by the caller) plus the workspace's own settings. It is
// stored as JSON; the client secret is not part of it.
type ProviderConfig struct {
	oauthflow.Provider
	Template     string   `json:"template,omitempty"`
	ClientID     string   `json:"client_id,omitempty"`
	Scopes       []string `json:"scopes"`
	CallbackURLs []string `json:"callback_urls"`
	ReturnURLs   []string `json:"return_urls"`
}

type providerView struct {
	Key string `json:"key"`
	ProviderConfig
	ClientSecretSet    bool      `json:"client_secret_set"`
	ClientSecretPrefix string    `json:"client_secret_prefix,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

var providerKey = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// fields of the request that are the workspace's, not the catalog entry's.
var workspaceFields = []string{"template", "client_id", "client_secret", "scopes", "callback_urls", "return_urls", "key", "name"}

func (s *Server) handlePutProvider(c *gin.Context) {
	key := c.Param("key")
	if !providerKey.MatchString(key) {
		fail(c, problem.ErrInvalidRequest.WithField("key", "1–63 lower-case letters, digits, dashes or underscores"))
		return
	}
	var req struct {
		Template     string        `json:"template"`
		ClientID     string        `json:"client_id"`
		ClientSecret *vault.Secret `json:"client_secret"`
		Scopes       []string      `json:"scopes"`
		CallbackURLs []string      `json:"callback_urls"`
		ReturnURLs   []string      `json:"return_urls"`
	}
	if !bindJSON(c, &req) {
		return
	}
	var overrides map[string]json.RawMessage
	_ = json.Unmarshal(mustBody(c), &overrides)
	for _, f := range workspaceFields {
		delete(overrides, f)
	}
	cfg, err := s.buildProvider(key, req.Template, overrides)
	if err != nil {
		fail(c, err)
		return
	}
	cfg.Template, cfg.ClientID, cfg.ReturnURLs = req.Template, req.ClientID, req.ReturnURLs
	cfg.Scopes = req.Scopes
	if cfg.Scopes == nil {
		cfg.Scopes = cfg.DefaultScopes
	}
	cfg.CallbackURLs = req.CallbackURLs
	if cfg.CallbackURLs == nil && cfg.AuthMode == oauthflow.AuthModeOAuth2 {
		cfg.CallbackURLs = []string{s.cfg.PublicURL + "/v1/oauth/callback"}
	}
	if err := s.validateProvider(&cfg); err != nil {
		fail(c, err)
		return
	}
	p := principal(c)
	view, err := s.putProvider(c.Request.Context(), p, key, cfg, req.ClientSecret)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, view)
}

// mustBody returns the body bindJSON already read (kept by gin's body cache, or re-read).
func mustBody(c *gin.Context) []byte {
	b, _ := c.Get(ctxBody)
	raw, _ := b.([]byte)
	return raw
}

// buildProvider starts from the template (if any) and applies the caller's overrides.
func (s *Server) buildProvider(key, template string, overrides map[string]json.RawMessage) (ProviderConfig, error) {
	merged := map[string]json.RawMessage{}
	if template != "" {
		t, ok := s.catalog.Get(template)
		if !ok {
			return ProviderConfig{}, problem.ErrInvalidRequest.WithField("template", "no such template in the catalog")
		}
		b, _ := json.Marshal(t)
		_ = json.Unmarshal(b, &merged)
	}
	for k, v := range overrides {
		merged[k] = v
	}
	b, _ := json.Marshal(merged)
	var cfg ProviderConfig
	if err := json.Unmarshal(b, &cfg.Provider); err != nil {
		return ProviderConfig{}, problem.ErrInvalidRequest.WithDetail("a provider field has the wrong type")
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

// validateProvider checks every URL of a provider: allowlists must be exact, absolute
// URLs (400 invalid_callback_url); endpoint URLs must be well-formed and must not point at
// private addresses unless the operator allowed them (400 unsafe_url).
func (s *Server) validateProvider(cfg *ProviderConfig) error {
	switch cfg.AuthMode {
	case oauthflow.AuthModeOAuth2, oauthflow.AuthModeAPIKey:
	default:
		return problem.ErrInvalidRequest.WithField("auth_mode", "oauth2 or api_key")
	}
	for _, list := range [][]string{cfg.CallbackURLs, cfg.ReturnURLs} {
		if err := oauthflow.ValidateAllowlist(list, s.cfg.Dev); err != nil {
			return problem.ErrInvalidCallbackURL.WithDetail(err.Error())
		}
	}
	endpoints := map[string]string{
		"authorization_url": cfg.AuthorizationURL, "token_url": cfg.TokenURL, "refresh_url": cfg.RefreshURL,
		"revocation_url": cfg.RevocationURL, "api_base_url": cfg.APIBaseURL, "health_check_url": cfg.HealthCheckURL,
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
	for field, raw := range endpoints {
		if raw == "" {
			continue
		}
		if err := s.checkEndpoint(raw); err != nil {
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
		if u, err := url.Parse(cfg.Issuer); err != nil || u.Scheme != "https" && !s.cfg.Dev || u.Host == "" {
			return problem.ErrInvalidRequest.WithField("issuer", "must be an absolute https URL")
		}
	}
	return nil
}

func (s *Server) checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.Fragment != "" || len(raw) > 2048 {
		return errors.New("must be an absolute URL without userinfo or fragment")
	}
	if u.Scheme != "https" {
		// Plain http only where an operator allowed the address (local test providers).
		addr, perr := netip.ParseAddr(u.Hostname())
		if u.Scheme != "http" || !s.cfg.Dev || perr != nil || !allowed(addr, s.cfg.OutboundAllowCIDRs) {
			return errors.New("must be an https URL")
		}
	}
	return outbound.CheckURL(raw, s.cfg.OutboundAllowCIDRs)
}

func allowed(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

func (s *Server) putProvider(ctx context.Context, p admin.Principal, key string, cfg ProviderConfig, secret *vault.Secret) (providerView, error) {
	now := s.now().UTC()
	id := ids.New(ids.Provider)
	if existing, err := s.store.Provider(ctx, p.WorkspaceID, key); err == nil {
		id = existing.ID
	} else if !errors.Is(err, store.ErrNotFound) {
		return providerView{}, err
	}
	var ps *store.ProviderSecret
	if secret != nil && !secret.IsZero() {
		sealed, err := s.secret.Seal(ctx, vault.ClientSecretBinding(p.WorkspaceID, id), *secret)
		if err != nil {
			return providerView{}, err
		}
		ps = &store.ProviderSecret{Sealed: sealed, Prefix: secret.Prefix(4), UpdatedAt: now}
	}
	doc, err := json.Marshal(cfg)
	if err != nil {
		return providerView{}, err
	}
	row := store.Provider{ID: id, WorkspaceID: p.WorkspaceID, Key: key, AuthMode: string(cfg.AuthMode), Config: string(doc),
		CreatedAt: now, UpdatedAt: now}
	ev := audit.Event{WorkspaceID: p.WorkspaceID, Type: audit.ProviderUpdated, Actor: p.KeyID, Outcome: audit.Success,
		Data: dataJSON("provider", key)}
	// keepSecret: an update without client_secret keeps the one set before.
	saved, err := s.store.PutProvider(ctx, row, ps, true, ev)
	if err != nil {
		return providerView{}, err
	}
	return s.providerView(ctx, saved)
}

func (s *Server) providerView(ctx context.Context, row store.Provider) (providerView, error) {
	var cfg ProviderConfig
	if err := json.Unmarshal([]byte(row.Config), &cfg); err != nil {
		return providerView{}, err
	}
	v := providerView{Key: row.Key, ProviderConfig: cfg, CreatedAt: row.CreatedAt.UTC(), UpdatedAt: row.UpdatedAt.UTC()}
	switch sec, err := s.store.ProviderSecret(ctx, row.ID); {
	case err == nil:
		v.ClientSecretSet, v.ClientSecretPrefix = true, sec.Prefix
	case !errors.Is(err, store.ErrNotFound):
		return providerView{}, err
	}
	return v, nil
}

// workspaceProvider returns a provider configured in the workspace.
func (s *Server) workspaceProvider(ctx context.Context, workspaceID, key string) (store.Provider, ProviderConfig, error) {
	row, err := s.store.Provider(ctx, workspaceID, key)
	if err != nil {
		return store.Provider{}, ProviderConfig{}, err
	}
	var cfg ProviderConfig
	if err := json.Unmarshal([]byte(row.Config), &cfg); err != nil {
		return store.Provider{}, ProviderConfig{}, err
	}
	return row, cfg, nil
}

func (s *Server) handleGetProvider(c *gin.Context) {
	row, err := s.store.Provider(c.Request.Context(), principal(c).WorkspaceID, c.Param("key"))
	if err != nil {
		fail(c, err)
		return
	}
	v, err := s.providerView(c.Request.Context(), row)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (s *Server) handleListProviders(c *gin.Context) {
	rows, err := s.store.ListProviders(c.Request.Context(), principal(c).WorkspaceID)
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]providerView, 0, len(rows))
	for _, r := range rows {
		v, err := s.providerView(c.Request.Context(), r)
		if err != nil {
			fail(c, err)
			return
		}
		out = append(out, v)
	}
	c.JSON(http.StatusOK, gin.H{"providers": out})
}

func (s *Server) handleDeleteProvider(c *gin.Context) {
	p := principal(c)
	ev := audit.Event{WorkspaceID: p.WorkspaceID, Type: audit.ProviderDeleted, Actor: p.KeyID, Outcome: audit.Success,
		Data: dataJSON("provider", c.Param("key"))}
	if err := s.store.DeleteProvider(c.Request.Context(), p.WorkspaceID, c.Param("key"), ev); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) handleCatalog(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"providers": s.catalog.All()})
}

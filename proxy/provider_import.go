package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

var _ controlplane.ConfigApplier = (*Server)(nil)

// ProviderImport is one provider to create or replace in a workspace, as the providers
// API takes it (PUT /v1/providers/{key}) without the client secret: Template names a
// catalog entry, Overrides are the request's other provider fields (JSON values by name).
type ProviderImport struct {
	Key          string
	Template     string
	ClientID     string
	Scopes       []string
	CallbackURLs []string
	ReturnURLs   []string
	Overrides    map[string]json.RawMessage
}

// ApplyProviderConfigs validates every provider exactly as PUT /v1/providers/{key} does
// and then writes them all in one transaction: one invalid provider and nothing is
// written (the error wraps controlplane.ErrInvalidConfig). Client secrets are not part of
// an import: a replaced provider keeps the one set in the data plane.
func (s *Server) ApplyProviderConfigs(ctx context.Context, workspaceID string, imports []ProviderImport) error {
	return s.applyImports(ctx, map[string][]ProviderImport{workspaceID: imports}, []string{workspaceID}, 0)
}

// ApplyControlPlaneConfig implements controlplane.ConfigApplier: every workspace of a
// verified document, all or nothing.
func (s *Server) ApplyControlPlaneConfig(ctx context.Context, doc controlplane.ConfigDocument) error {
	byWS := map[string][]ProviderImport{}
	var order []string
	for _, ws := range doc.Workspaces {
		order = append(order, ws.WorkspaceID)
		for _, p := range ws.Providers {
			byWS[ws.WorkspaceID] = append(byWS[ws.WorkspaceID], importOf(p))
		}
	}
	return s.applyImports(ctx, byWS, order, doc.Version)
}

// importOf maps a pulled provider onto the providers API's request: the endpoint fields
// and auth_mode are overrides of the template, as in a PUT body.
func importOf(p controlplane.ProviderConfigDoc) ProviderImport {
	in := ProviderImport{Key: p.Key, Template: p.Template, ClientID: p.ClientID, Scopes: p.Scopes,
		CallbackURLs: p.CallbackURLs, ReturnURLs: p.ReturnURLs, Overrides: map[string]json.RawMessage{}}
	for name, v := range map[string]string{"auth_mode": p.AuthMode, "authorization_url": p.AuthorizationURL,
		"token_url": p.TokenURL, "refresh_url": p.RefreshURL, "revocation_url": p.RevocationURL, "issuer": p.Issuer,
		"api_base_url": p.APIBaseURL, "health_check_url": p.HealthCheckURL} {
		if v != "" {
			in.Overrides[name], _ = json.Marshal(v)
		}
	}
	return in
}

// applyImports validates everything, then writes everything in one transaction. version
// (the pulled document's, 0 for none) goes into each provider.updated audit event.
func (s *Server) applyImports(ctx context.Context, byWS map[string][]ProviderImport, order []string, version int64) error {
	now := s.now().UTC()
	var rows []store.Provider
	var evs []audit.Event
	for _, ws := range order {
		if _, err := s.store.Workspace(ctx, ws); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%w: workspace %s does not exist", controlplane.ErrInvalidConfig, ws)
			}
			return err
		}
		for _, in := range byWS[ws] {
			cfg, err := s.importedProvider(in)
			if err != nil {
				return fmt.Errorf("%w: workspace %s provider %s: %w", controlplane.ErrInvalidConfig, ws, in.Key, err)
			}
			doc, err := json.Marshal(cfg)
			if err != nil {
				return err
			}
			rows = append(rows, store.Provider{ID: ids.New(ids.Provider), WorkspaceID: ws, Key: in.Key,
				AuthMode: string(cfg.AuthMode), Config: string(doc), CreatedAt: now, UpdatedAt: now})
			evs = append(evs, audit.Event{WorkspaceID: ws, Type: audit.ProviderUpdated, Actor: controlplane.AuditActor,
				Outcome: audit.Success, Data: dataJSON("provider", in.Key, "config_version", strconv.FormatInt(version, 10))})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	_, err := s.store.PutProviders(ctx, rows, evs...)
	return err
}

// importedProvider builds and validates a provider the way handlePutProvider does: the
// template (if any) with the overrides, the workspace's fields, the same defaults, the
// same validateProvider. TestImportValidatesLikeTheAPI keeps the two in step.
func (s *Server) importedProvider(in ProviderImport) (ProviderConfig, error) {
	if !providerKey.MatchString(in.Key) {
		return ProviderConfig{}, errors.New("key: 1–63 lower-case letters, digits, dashes or underscores")
	}
	overrides := make(map[string]json.RawMessage, len(in.Overrides))
	for k, v := range in.Overrides {
		overrides[k] = v
	}
	for _, f := range workspaceFields {
		delete(overrides, f)
	}
	cfg, err := s.buildProvider(in.Key, in.Template, overrides)
	if err != nil {
		return ProviderConfig{}, err
	}
	cfg.Template, cfg.ClientID, cfg.ReturnURLs = in.Template, in.ClientID, in.ReturnURLs
	cfg.Scopes = in.Scopes
	if cfg.Scopes == nil {
		cfg.Scopes = cfg.DefaultScopes
	}
	cfg.CallbackURLs = in.CallbackURLs
	if cfg.CallbackURLs == nil && cfg.AuthMode == oauthflow.AuthModeOAuth2 {
		cfg.CallbackURLs = []string{s.cfg.PublicURL + "/v1/oauth/callback"}
	}
	if err := s.validateProvider(&cfg); err != nil {
		return ProviderConfig{}, err
	}
	return cfg, nil
}

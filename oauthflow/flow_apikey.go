package oauthflow

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// API-key connections. The application may send the key itself (POST /v1/connections),
// or let the end user type it into the hosted connect page (SubmitAPIKey), so that the key
// goes from the end user's browser to the proxy and never through the application. Both
// build, seal and bind the connection with NewAPIKeyConnection: one decision, one place.

// MaxAPIKeyLen is the longest API key accepted (8 KiB).
const MaxAPIKeyLen = 8192

// APIKeyConnection is an api_key connection about to be stored: its metadata, its
// sealed credential bound to the provider's API-key origins, and its audit event.
type APIKeyConnection struct {
	Connection store.Connection
	Credential store.Credential
	Event      audit.Event
}

// NewAPIKeyConnection checks key and seals it for a new connection of provider p (an
// api_key provider) for end user endUser of the workspace; actor is who creates it (an
// API key's id, or the connect session's id). config is the connection's
// connection_config (400 invalid_connection_config), metadata what the application gives
// with it (CheckMetadata). The key goes to the API-key origins of p as this connection
// uses it (ForConnection: its filled URLs, its api_base field), as configured now,
// whatever the provider says later.
func NewAPIKeyConnection(ctx context.Context, creds Sealer, p Provider, workspaceID, provider, endUser, actor string,
	key vault.Secret, config, metadata map[string]string, now time.Time) (APIKeyConnection, error) {
	if key.IsZero() || key.Len() > MaxAPIKeyLen {
		return APIKeyConnection{}, problem.ErrInvalidRequest.WithField("api_key", "required, at most 8 KiB")
	}
	if p.AuthMode != AuthModeAPIKey {
		return APIKeyConnection{}, problem.ErrInvalidRequest.WithField("provider", "not an api_key provider of this workspace or the catalog")
	}
	if err := p.CheckMetadata(metadata); err != nil {
		return APIKeyConnection{}, err
	}
	filled, err := p.ForConnection(config, metadata)
	if err != nil {
		return APIKeyConnection{}, err
	}
	now = now.UTC()
	conn := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: workspaceID, Provider: provider,
		EndUserID: endUser, AuthMode: string(AuthModeAPIKey), Status: store.StatusActive,
		Scopes: store.Strings{}, CredentialPrefix: key.Prefix(8), Version: 1, CreatedAt: now, UpdatedAt: now,
		ConnectionConfig: store.JSONObject(config), Metadata: store.JSONObject(metadata),
		NextRefreshAt: &now} // the refresher's sweep health-checks it (or unschedules it if the provider has no check)
	origins := filled.APIKeyOrigins()
	sealed, err := creds.Seal(ctx, vault.APIKeyBinding(workspaceID, conn.ID, origins), key)
	if err != nil {
		return APIKeyConnection{}, err
	}
	return APIKeyConnection{Connection: conn,
		Credential: store.Credential{ConnectionID: conn.ID, WorkspaceID: workspaceID, APIKey: sealed,
			AccessOrigins: store.StoredOrigins(origins), UpdatedAt: now},
		Event: audit.Event{WorkspaceID: workspaceID, Type: audit.ConnectionCreated, Actor: actor,
			ConnectionID: conn.ID, Outcome: audit.Success, Data: audit.Data("provider", provider)}}, nil
}

// SubmitAPIKey is the hosted connect page's API-key form for session id: with formToken,
// the page's token for this session, it seals key as POST /v1/connections does and stores
// the connection while using the session up, in one transaction. Its connection_config is
// the session's, or typed, what the end user typed on the page when the application gave
// none and the provider needs it (as Start). A refused submission
// (bad token, used or expired link, empty key) stores nothing and leaves the session as
// it was. The Completion ends on the session's return URL like an OAuth flow.
func (f *Flows) SubmitAPIKey(ctx context.Context, id, formToken string, key vault.Secret, typed map[string]string) (Completion, error) {
	cs, err := f.pendingSession(ctx, id)
	if err != nil {
		return Completion{}, err
	}
	switch ok, err := f.keys.CheckFormToken(ctx, cs.ID, formToken); {
	case err != nil:
		return Completion{}, err
	case !ok:
		return Completion{}, problem.ErrForbidden.WithDetail("the connect form's token does not match this connect link")
	}
	cfg, err := f.providers.FlowConfig(ctx, cs.WorkspaceID, cs.Provider)
	if err != nil {
		return Completion{}, err
	}
	values := store.ParseJSONObject(cs.ConnectionConfig)
	if len(values) == 0 && cfg.NeedsConnectionConfig() {
		values = typed
	}
	now := f.now().UTC()
	c, err := NewAPIKeyConnection(ctx, f.creds, cfg.Provider, cs.WorkspaceID, cs.Provider, cs.EndUserID, cs.ID, key, values, nil, now)
	if err != nil {
		return Completion{}, err
	}
	err = f.store.ConnectWithSession(ctx, cs.ID, c.Connection, c.Credential, now, c.Event)
	if errors.Is(err, store.ErrConflict) {
		return Completion{}, problem.ErrInvalidState.WithDetail("this connect link was already used or has expired")
	}
	if err != nil {
		return Completion{}, err
	}
	f.log.LogAttrs(ctx, slog.LevelInfo, "connect: api key connection stored", slog.String("session", cs.ID),
		slog.String("provider", cs.Provider), slog.String("connection", c.Connection.ID))
	return Completion{Session: cs, Connection: c.Connection}, nil
}

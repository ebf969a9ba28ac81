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

// Typed connections: api_key and basic, whose credential the end user types (an API key;
// a username and password). The application may send it itself (POST /v1/connections),
// or let the end user type it into the hosted connect page (SubmitCredential), so that it
// goes from the end user's browser to the proxy and never through the application. Both
// build, seal and bind the connection with NewTypedConnection: one decision, one place.
// Both modes seal into the credential's api_key field with vault.APIKeyBinding to the
// API-key origins (a basic credential as {"username","password"}, basic.go), are opened
// alike, health-checked alike and never revoked at the provider.

// MaxAPIKeyLen is the longest API key accepted (8 KiB).
const MaxAPIKeyLen = 8192

// Typed reports the modes whose credential the end user types and the proxy keeps as it
// was given: api_key and basic (sealed in the api_key field, bound to the API-key
// origins; no token endpoint, no refresh, a health check when the provider has one).
func (m AuthMode) Typed() bool { return m == AuthModeAPIKey || m == AuthModeBasic }

// TypedCredential is what was typed for a typed connection: an API key (api_key) or a
// username and password (basic). Exactly the one the provider's mode takes is set.
type TypedCredential struct {
	APIKey vault.Secret
	Basic  BasicCredential
}

// TypedConnection is an api_key or basic connection about to be stored: its metadata, its
// sealed credential bound to the provider's API-key origins, and its audit event.
type TypedConnection struct {
	Connection store.Connection
	Credential store.Credential
	Event      audit.Event
}

// check validates cred for mode: 400 invalid_request with field errors (api_key, or
// basic.username / basic.password), or one naming the provider when mode is not typed.
func (cred TypedCredential) check(mode AuthMode) error {
	switch mode {
	case AuthModeAPIKey:
		if !cred.Basic.IsZero() {
			return problem.ErrInvalidRequest.WithField("basic", "only for basic providers; this one takes api_key")
		}
		if cred.APIKey.IsZero() || cred.APIKey.Len() > MaxAPIKeyLen {
			return problem.ErrInvalidRequest.WithField("api_key", "required, at most 8 KiB")
		}
		return nil
	case AuthModeBasic:
		if !cred.APIKey.IsZero() {
			return problem.ErrInvalidRequest.WithField("api_key", "only for api_key providers; this one takes basic")
		}
		return cred.Basic.Check("basic.")
	}
	return problem.ErrInvalidRequest.WithField("provider", "not an api_key or basic provider of this workspace or the catalog")
}

// NewTypedConnection checks cred and seals it for a new connection of provider p (an
// api_key or basic provider) for end user endUser of the workspace; actor is who creates
// it (an API key's id, or the connect session's id). config is the connection's
// connection_config (400 invalid_connection_config), metadata what the application gives
// with it (CheckMetadata). The credential goes to the API-key origins of p as this
// connection uses it (ForConnection: its filled URLs, its api_base field), as configured
// now, whatever the provider says later.
func NewTypedConnection(ctx context.Context, creds Sealer, p Provider, workspaceID, provider, endUser, actor string,
	cred TypedCredential, config, metadata map[string]string, now time.Time) (TypedConnection, error) {
	if err := cred.check(p.AuthMode); err != nil {
		return TypedConnection{}, err
	}
	if err := p.CheckMetadata(metadata); err != nil {
		return TypedConnection{}, err
	}
	filled, err := p.ForConnection(config, metadata)
	if err != nil {
		return TypedConnection{}, err
	}
	key, prefix := cred.APIKey, cred.APIKey.Prefix(8)
	if p.AuthMode == AuthModeBasic {
		key, prefix = cred.Basic.encode(), cred.Basic.Prefix()
		defer key.Wipe()
	}
	now = now.UTC()
	conn := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: workspaceID, Provider: provider,
		EndUserID: endUser, AuthMode: string(p.AuthMode), Status: store.StatusActive,
		Scopes: store.Strings{}, CredentialPrefix: prefix, Version: 1, CreatedAt: now, UpdatedAt: now,
		ConnectionConfig: store.JSONObject(config), Metadata: store.JSONObject(metadata),
		NextRefreshAt: &now} // the refresher's sweep health-checks it (or unschedules it if the provider has no check)
	origins := filled.APIKeyOrigins()
	sealed, err := creds.Seal(ctx, vault.APIKeyBinding(workspaceID, conn.ID, origins), key)
	if err != nil {
		return TypedConnection{}, err
	}
	return TypedConnection{Connection: conn,
		Credential: store.Credential{ConnectionID: conn.ID, WorkspaceID: workspaceID, APIKey: sealed,
			AccessOrigins: store.StoredOrigins(origins), UpdatedAt: now},
		Event: audit.Event{WorkspaceID: workspaceID, Type: audit.ConnectionCreated, Actor: actor,
			ConnectionID: conn.ID, Outcome: audit.Success, Data: audit.Data("provider", provider)}}, nil
}

// SubmitCredential is the hosted connect page's form of a typed provider (the API key, or
// the username and password) for session id: with formToken, the page's token for this
// session, it seals cred as POST /v1/connections does and stores
// the connection while using the session up, in one transaction. Its connection_config is
// the session's, or typed, what the end user typed on the page when the application gave
// none and the provider needs it (as Start). A refused submission
// (bad token, used or expired link, empty or malformed credential) stores nothing and leaves the session as
// it was. The Completion ends on the session's return URL like an OAuth flow.
func (f *Flows) SubmitCredential(ctx context.Context, id, formToken string, cred TypedCredential, typed map[string]string) (Completion, error) {
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
	c, err := NewTypedConnection(ctx, f.creds, cfg.Provider, cs.WorkspaceID, cs.Provider, cs.EndUserID, cs.ID, cred, values, nil, now)
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
	f.log.LogAttrs(ctx, slog.LevelInfo, "connect: typed connection stored", slog.String("session", cs.ID), slog.String("auth_mode", string(cfg.AuthMode)),
		slog.String("provider", cs.Provider), slog.String("connection", c.Connection.ID))
	return Completion{Session: cs, Connection: c.Connection}, nil
}

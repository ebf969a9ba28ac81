package oauthflow

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Completion is how a flow that reached the provider ended. Either Connection is the
// stored connection, or ErrorCode says why there is none (an RFC 6749 code, unsafe_url
// or provider_error): both end on the session's return URL.
type Completion struct {
	Session    store.ConnectSession
	Connection store.Connection
	ErrorCode  string
}

// Reconnected reports whether the flow restored an existing connection.
func (c Completion) Reconnected() bool { return c.Session.ReconnectConnectionID != "" }

// Complete validates the authorization response in query (the callback's) for the
// browser whose flow cookie carries nonce and, only when everything holds, consumes the
// session, exchanges the code and stores the connection. A refused callback (an error)
// stores nothing; a provider's refusal or a failed exchange consumes the session and
// ends in a Completion with an ErrorCode.
func (f *Flows) Complete(ctx context.Context, query url.Values, nonce string) (Completion, error) {
	invalid := problem.ErrInvalidState.WithDetail("unknown, used, expired or foreign state")
	state := query.Get("state")
	if len(query["state"]) != 1 {
		return Completion{}, invalid
	}
	// The state's MAC before anything else: a state this deployment did not make never
	// reaches the store.
	switch ok, err := f.keys.CheckState(ctx, state); {
	case err != nil:
		return Completion{}, err
	case !ok:
		return Completion{}, invalid
	}
	stateHash := HashState(state)
	cs, err := f.store.ConnectSessionByState(ctx, stateHash)
	if errors.Is(err, store.ErrNotFound) {
		return Completion{}, invalid
	}
	if err != nil {
		return Completion{}, err
	}
	now := f.now().UTC()
	if cs.UsedAt != nil || !now.Before(cs.ExpiresAt) {
		return Completion{}, invalid
	}
	bound, err := f.keys.VerifyBrowser(ctx, cs.ID, nonce, cs.BrowserBinding) // by the stored kid
	if err != nil {
		return Completion{}, err
	}
	if !bound {
		return Completion{}, invalid
	}
	cb, err := ParseCallback(query)
	if err != nil {
		return Completion{}, problem.ErrInvalidRequest.WithDetail("malformed authorization response")
	}
	cfg, err := f.providers.FlowConfig(ctx, cs.WorkspaceID, cs.Provider)
	if err != nil {
		return Completion{}, err
	}
	// The connection's provider: the URLs filled with the session's values (its issuer too).
	prov, err := cfg.Provider.Expand(store.ParseJSONObject(cs.ConnectionConfig))
	if err != nil {
		return Completion{}, err
	}
	// RFC 9207: before anything else is done with the response, and for error responses too.
	if err := CheckIssuer(prov, cb); err != nil {
		f.log.LogAttrs(ctx, slog.LevelWarn, "connect: issuer check failed", slog.String("session", cs.ID),
			slog.String("provider", cs.Provider), slog.String("reason", err.Error()))
		return Completion{}, problem.ErrIssuerMismatch.WithDetail("the authorization response's iss does not match the provider's issuer")
	}
	// Single use from here on: of two callbacks with this state, one gets past this line.
	if err := f.store.ConsumeConnectSession(ctx, cs.ID, stateHash, now); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return Completion{}, invalid
		}
		return Completion{}, err
	}
	done := Completion{Session: cs}
	if cb.Error != "" {
		done.ErrorCode = ErrorCode(cb.Error)
		f.log.LogAttrs(ctx, slog.LevelInfo, "connect: provider refused", slog.String("session", cs.ID),
			slog.String("provider", cs.Provider), slog.String("error", done.ErrorCode))
		return done, nil
	}
	conn, err := f.exchange(ctx, cs, prov, cb.Code, now)
	var fe *flowError
	if errors.As(err, &fe) {
		f.log.LogAttrs(ctx, slog.LevelWarn, "connect: code exchange failed", slog.String("session", cs.ID),
			slog.String("provider", cs.Provider), slog.String("error", fe.code), slog.Int("status", fe.status))
		done.ErrorCode = fe.code
		return done, nil
	}
	if err != nil {
		return Completion{}, err
	}
	done.Connection = conn
	f.log.LogAttrs(ctx, slog.LevelInfo, "connect: connection stored", slog.String("session", cs.ID),
		slog.String("provider", cs.Provider), slog.String("connection", conn.ID), slog.Bool("reconnect", done.Reconnected()))
	return done, nil
}

// flowError is a provider-side failure of the exchange: the flow ends on the return URL
// with status=error and the code (an RFC 6749 code, unsafe_url or provider_error).
type flowError struct {
	code   string
	status int
}

func (e *flowError) Error() string { return "connect: " + e.code }

// exchange exchanges the code with the sealed verifier and stores the connection (a new
// one, or the one the session reconnects) with its sealed tokens and its audit event.
func (f *Flows) exchange(ctx context.Context, cs store.ConnectSession, p Provider, code string, now time.Time) (store.Connection, error) {
	verifierOrigins := store.BoundOrigins(cs.VerifierOrigins)
	verifier, err := f.creds.Open(ctx, vault.PKCEVerifierBinding(cs.WorkspaceID, cs.ID, verifierOrigins), cs.PKCEVerifier)
	if err != nil {
		return store.Connection{}, err
	}
	client, err := f.providers.ClientCredentials(ctx, cs.WorkspaceID, cs.Provider)
	if err != nil {
		return store.Connection{}, err
	}
	use := vault.Use{WorkspaceID: cs.WorkspaceID, ConnectionID: cs.ReconnectConnectionID, Actor: cs.ID, Purpose: vault.UseCodeExchange}
	if err := vault.CheckOrigin(ctx, f.audit, use, p.TokenURL, append(client.SecretBindings(), verifierOrigins)...); err != nil {
		return store.Connection{}, err
	}
	hc, err := f.clientFor(p)
	if err != nil {
		return store.Connection{}, err
	}
	tok, err := Exchange(ctx, hc, p, client, code, verifier.Reveal(), cs.CallbackURL, now)
	if err != nil {
		var pe *ProviderError
		switch {
		case errors.As(err, &pe):
			return store.Connection{}, &flowError{code: pe.Code, status: pe.Status}
		case errors.Is(err, outbound.ErrUnsafeURL):
			return store.Connection{}, &flowError{code: "unsafe_url"}
		case errors.Is(err, context.Canceled):
			return store.Connection{}, err
		}
		f.log.LogAttrs(ctx, slog.LevelWarn, "connect: token request failed", slog.String("session", cs.ID), slog.Any("err", err))
		return store.Connection{}, &flowError{code: ProviderErrorCode}
	}
	connID, typ := ids.New(ids.Connection), audit.ConnectionCreated
	if cs.ReconnectConnectionID != "" {
		connID, typ = cs.ReconnectConnectionID, audit.ConnectionReconnected
	}
	conn := store.Connection{ID: connID, WorkspaceID: cs.WorkspaceID, Provider: cs.Provider, EndUserID: cs.EndUserID,
		AuthMode: string(AuthModeOAuth2), Status: store.StatusActive, Scopes: store.Strings(cs.Scopes), Version: 1,
		CreatedAt: now, UpdatedAt: now, ConnectionConfig: cs.ConnectionConfig, Metadata: store.JSONObject(tok.Metadata)}
	// Bound to the connection's origins as configured now (p: the filled URLs; cp: and the
	// API base a metadata field names): a later change of the provider's URLs does not move
	// these tokens.
	cp, err := p.ForConnection(nil, tok.Metadata)
	if err != nil {
		tok.AccessToken.Wipe()
		tok.RefreshToken.Wipe()
		return store.Connection{}, &flowError{code: ProviderErrorCode}
	}
	cred, err := sealGrant(ctx, f.creds, cp, &conn, tok, now)
	if err != nil {
		return store.Connection{}, err
	}
	ev := audit.Event{WorkspaceID: cs.WorkspaceID, Type: typ, Actor: cs.ID, ConnectionID: connID, Outcome: audit.Success,
		Data: audit.Data("provider", cs.Provider)}
	return f.store.SaveOAuthConnection(ctx, conn, cred, cs.ReconnectConnectionID != "", ev)
}

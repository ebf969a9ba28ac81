package refresher

import (
	"context"
	"fmt"
	"time"

	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// This file is the one decision "serve, refresh first, or refuse" and the opening of a
// connection's credential. The token endpoint and the forwarding proxy call
// Tokens.Credential; the health checks open the API key of the row they hold with openCredential.
//
// The decision, the same for every caller:
//   - needs_reauth → ErrNeedsReauth; disconnected, revoke_pending or no credential →
//     ErrDisconnected. An OAuth connection without an access token → ErrNeedsReauth.
//   - An API key is opened as stored.
//   - An access token (OAuth, or minted: AuthMode.HasAccessToken) outside the lead window
//     and valid for minValidity is opened from the row already read: no further query, no
//     provider call.
//   - Otherwise it is refreshed — or, for a minted mode (and one that holds no token yet),
//     minted — first (single-flight and leased, lease.go and mint.go). When no refresh
//     can be had — the provider is down, rate limited, cooling down, or no Refresher is
//     wired — the current token is served while it has not expired; an expired token is
//     never served (ErrUnavailable).

// TokenStore reads a connection with its sealed credential (one indexed read, or the
// store's sealed-row cache).
type TokenStore interface {
	ConnectionWithCredential(ctx context.Context, workspaceID, id string) (store.ConnectionCredential, error)
}

// Opener opens sealed credential fields (vault.Keyring of purpose credentials).
type Opener interface {
	Open(ctx context.Context, b vault.Binding, envelope []byte) (vault.Secret, error)
}

// Credential is an opened credential ready to use, with the row it was served from (after
// a refresh, the row as committed).
type Credential struct {
	Secret    vault.Secret       // the access token (OAuth or minted), the API key, or a basic credential's JSON (oauthflow.OpenBasic)
	Kind      oauthflow.AuthMode // the connection's auth mode: an access token (oauth2, a minted mode), api_key or basic
	TokenType string             // an access token's type ("Bearer" when the provider named none)
	ExpiresAt *time.Time         // an access token's expiry; nil when it does not expire
	Scopes    []string           // the granted scopes as stored
	// Origins are the origins Secret is bound to: every call that presents it passes
	// vault.CheckOrigin with them first (the token endpoint hands it to the application
	// and checks nothing).
	Origins vault.Origins
	Conn    store.Connection
}

// Tokens serves credentials: the decision above and the opening. Safe for concurrent use.
type Tokens struct {
	store TokenStore
	creds Opener
	r     *Refresher // nil: nothing refreshes
	now   func() time.Time
}

// NewTokens builds the token service over st and creds. r refreshes tokens first when
// they need it; with r nil nothing refreshes, and a token is served until it expires. now
// is the clock (nil: time.Now).
func NewTokens(st TokenStore, creds Opener, r *Refresher, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{store: st, creds: creds, r: r, now: now}
}

// Credential returns the connection's credential, opened, deciding as the file comment
// says. minValidity asks that an access token stay valid at least that long. On an error
// the Credential still names the connection (Conn) once it was read, and its Kind once it
// was not refused.
func (t *Tokens) Credential(ctx context.Context, workspaceID, connectionID string, minValidity time.Duration) (Credential, error) {
	cc, err := t.Usable(ctx, workspaceID, connectionID)
	if err != nil {
		return Credential{Conn: cc.Connection}, err
	}
	return t.Open(ctx, cc, minValidity)
}

// Usable reads the connection with its sealed credential (one indexed read, or the store's
// sealed-row cache) and refuses one whose credential may not be used: its workspace frozen
// (423), needs_reauth (409),
// disconnected, revocation pending or no credential (410). On a refusal the row is still
// returned. Callers that must check something else before the credential is opened (the
// forwarding proxy checks its target) call Usable, then Open.
func (t *Tokens) Usable(ctx context.Context, workspaceID, connectionID string) (store.ConnectionCredential, error) {
	cc, err := t.store.ConnectionWithCredential(ctx, workspaceID, connectionID)
	if err != nil {
		return cc, err
	}
	if cc.WorkspaceFrozen {
		// Not in refusal: a frozen workspace's connections still refresh and revoke.
		return cc, ErrWorkspaceFrozen
	}
	return cc, refusal(cc)
}

// Open decides for a row that Usable accepted: an API key is opened; an OAuth access token
// outside the lead window and valid for minValidity is opened from the row (no further
// query, no provider call); otherwise it is refreshed first, or refused when it has expired
// and cannot be.
func (t *Tokens) Open(ctx context.Context, cc store.ConnectionCredential, minValidity time.Duration) (Credential, error) {
	workspaceID, connectionID := cc.WorkspaceID, cc.ID
	mode := oauthflow.AuthMode(cc.AuthMode)
	if !mode.HasAccessToken() {
		return openCredential(ctx, t.creds, cc)
	}
	if t.r != nil && t.r.NeedsRefresh(cc.Connection, minValidity) {
		cred, err := t.r.token(ctx, workspaceID, connectionID, minValidity, false)
		if err != nil {
			return Credential{Kind: mode, Conn: cc.Connection}, err
		}
		if cred.Scopes == nil {
			cred.Scopes = []string(cc.Scopes)
		}
		return cred, nil
	}
	if !stillValid(cc.Connection, t.now()) {
		// Expired, and no Refresher to renew it.
		return Credential{Kind: mode, Conn: cc.Connection}, ErrUnavailable
	}
	return openCredential(ctx, t.creds, cc)
}

// ForceRefresh refreshes the connection's tokens now and returns the new access token
// (the forwarding proxy, after a provider's 401). Without a Refresher: ErrUnavailable.
func (t *Tokens) ForceRefresh(ctx context.Context, workspaceID, connectionID string) (vault.Secret, error) {
	if t.r == nil {
		return vault.Secret{}, ErrUnavailable
	}
	return t.r.ForceRefresh(ctx, workspaceID, connectionID)
}

// Refresh refreshes the connection now and returns its metadata (Refresher.Refresh).
// Without a Refresher: ErrUnavailable.
func (t *Tokens) Refresh(ctx context.Context, workspaceID, connectionID string) (store.Connection, error) {
	if t.r == nil {
		return store.Connection{}, ErrUnavailable
	}
	return t.r.Refresh(ctx, workspaceID, connectionID)
}

// refusal is the error of a connection whose credential may not be used, or nil.
func refusal(cc store.ConnectionCredential) error {
	switch {
	case cc.Status == store.StatusNeedsReauth:
		return ErrNeedsReauth
	case cc.Status == store.StatusDisconnected || cc.Status == store.StatusRevokePending || cc.Credential == nil:
		return ErrDisconnected
	}
	return nil
}

func stillValid(c store.Connection, now time.Time) bool {
	return c.ExpiresAt == nil || c.ExpiresAt.After(now)
}

// openCredential opens the credential of a row: the api_key field of a typed (api_key or
// basic) connection, the access token of an OAuth one.
func openCredential(ctx context.Context, creds Opener, cc store.ConnectionCredential) (Credential, error) {
	out := Credential{Kind: oauthflow.AuthMode(cc.AuthMode), Scopes: []string(cc.Scopes), Conn: cc.Connection}
	if cc.Credential == nil {
		return out, ErrDisconnected
	}
	var bind vault.Binding
	var sealed []byte
	out.Origins = store.BoundOrigins(cc.Credential.AccessOrigins)
	switch out.Kind {
	case oauthflow.AuthModeAPIKey, oauthflow.AuthModeBasic:
		bind, sealed = vault.APIKeyBinding(cc.WorkspaceID, cc.ID, out.Origins), cc.Credential.APIKey
	case oauthflow.AuthModeOAuth2, oauthflow.AuthModeClientCredentials, oauthflow.AuthModeJWTBearer, oauthflow.AuthModeGitHubApp:
		// An OAuth access token, or a minted one: sealed and bound alike.
		bind, sealed = store.AccessTokenBinding(cc.Connection, out.Origins), cc.Credential.AccessToken
		out.TokenType, out.ExpiresAt = tokenType(cc.Credential.TokenType), cc.ExpiresAt
	default:
		return out, fmt.Errorf("refresher: connection %s: unknown auth mode %q", cc.ID, cc.AuthMode)
	}
	if len(sealed) == 0 {
		if out.Kind.Minted() {
			return out, ErrUnavailable // none minted yet, and nothing mints it now
		}
		return out, ErrNeedsReauth
	}
	sec, err := creds.Open(ctx, bind, sealed)
	if err != nil {
		return out, err
	}
	out.Secret = sec
	return out, nil
}

func tokenType(t string) string {
	if t == "" {
		return "Bearer"
	}
	return t
}

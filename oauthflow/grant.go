package oauthflow

import (
	"context"
	"time"

	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// A grant is stored the same way whether it came from the code exchange (flow_callback.go)
// or was imported (import.go): sealGrant is that one place.

// sealGrant fills conn's token fields from tok (prefix, expiry, refresh schedule, scopes
// when tok lists them) and returns the credential with tok's tokens sealed, each bound to
// the provider's origins as configured now: a later change of its URLs does not move them.
func sealGrant(ctx context.Context, creds Sealer, p Provider, conn *store.Connection, tok Token, now time.Time) (store.Credential, error) {
	if tok.Scopes != nil {
		conn.Scopes = store.Strings(tok.Scopes)
	}
	if conn.Scopes == nil {
		conn.Scopes = store.Strings{}
	}
	conn.CredentialPrefix, conn.ExpiresAt = tok.AccessToken.Prefix(8), tok.ExpiresAt
	if !tok.RefreshToken.IsZero() {
		// The refresh token's own end as the provider (or the import) says; an idle TTL is
		// not an end: keep-alive refreshes (RefreshDue) keep pushing it away.
		conn.RefreshTokenExpiresAt = tok.RefreshExpiresAt
		// The refresher's seam: a connection with a refresh token is due at its expiry (or
		// earlier, to keep an idle refresh token alive); the refresher applies its lead
		// window to this.
		conn.NextRefreshAt = p.RefreshDue(tok, now)
	}
	access, refresh := p.AccessTokenOrigins(), p.RefreshTokenOrigins()
	ws, id := conn.WorkspaceID, conn.ID
	cred := store.Credential{ConnectionID: id, WorkspaceID: ws, TokenType: tok.TokenType, UpdatedAt: now,
		AccessOrigins: store.StoredOrigins(access), RefreshOrigins: store.StoredOrigins(refresh)}
	var err error
	if cred.AccessToken, err = creds.Seal(ctx, store.AccessTokenBinding(*conn, access), tok.AccessToken); err != nil { // the one binding of a connection's access token
		return store.Credential{}, err
	}
	if !tok.RefreshToken.IsZero() {
		if cred.RefreshToken, err = creds.Seal(ctx, vault.RefreshTokenBinding(ws, id, refresh), tok.RefreshToken); err != nil {
			return store.Credential{}, err
		}
	}
	return cred, nil
}

// RefreshDue is the next_refresh_at of a grant refreshed (or stored) at now with response
// tok: the access token's expiry, or earlier when the provider's refresh_token_idle_ttl
// would let an unused refresh token lapse first (a keep-alive refresh at three quarters
// of the idle window); nil when neither applies (the token does not expire).
func (p Provider) RefreshDue(tok Token, now time.Time) *time.Time {
	due := tok.ExpiresAt
	if p.RefreshTokenIdleTTL > 0 {
		keep := now.Add(time.Duration(p.RefreshTokenIdleTTL) * time.Second * 3 / 4).UTC()
		if due == nil || keep.Before(*due) {
			due = &keep
		}
	}
	return due
}

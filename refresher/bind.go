package refresher

import (
	"context"
	"errors"
	"log/slog"

	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// The origin-binding migration of credentials stored before origin binding (DESIGN.md
// "Where a credential may go"). Such a credential opens as it was sealed (its associated
// data has no origins) and is refused by vault.CheckOrigin for every call that carries it
// (fail closed) until this binds it: each field is opened, sealed again bound to the
// origins of the connection's provider as configured at migration time, and written with
// its origins under a compare-and-swap on the connection's version. It runs in batches
// after a cursor kept in the database, so a crash or a restart resumes where it stopped,
// and a rerun is harmless: bound rows are never read again.

// BindStore is what the migration needs of the store (*store.Store).
type BindStore interface {
	store.BindProgress
	UnboundCredentials(ctx context.Context, after string, limit int) ([]store.ConnectionCredential, error)
	BindCredential(ctx context.Context, workspaceID, connectionID string, version int64, cred store.Credential) error
}

var _ BindStore = (*store.Store)(nil)

// BindStats counts what a run of the migration did.
type BindStats struct {
	Bound   int // bound now
	Skipped int // left unbound (provider gone, a concurrent write): refused until a later run binds them
}

// BindLegacy binds every unbound credential, batch at a time, from the stored cursor
// (store.BindBatches). A store or KMS outage stops it with the error; a row that cannot
// be bound is skipped and stays refused.
func (r *Refresher) BindLegacy(ctx context.Context, st BindStore, batch int) (BindStats, error) {
	bound, skipped, err := store.BindBatches(ctx, st, store.BindProgressCredentials, batch, st.UnboundCredentials,
		func(cc store.ConnectionCredential) string { return cc.ID },
		func(ctx context.Context, cc store.ConnectionCredential) error { return r.bindOne(ctx, st, cc) },
		func(err error) bool { return errors.Is(err, vault.ErrKMSUnavailable) },
		func(cc store.ConnectionCredential, err error) {
			r.log.LogAttrs(ctx, slog.LevelWarn, "origin binding: connection left unbound",
				slog.String("connection", cc.ID), slog.Any("err", err))
		})
	return BindStats{Bound: bound, Skipped: skipped}, err
}

// bindOne re-seals one connection's credential bound to its provider's current origins.
func (r *Refresher) bindOne(ctx context.Context, st BindStore, cc store.ConnectionCredential) error {
	cred := cc.Credential
	if cred == nil {
		return nil
	}
	prov, _, err := r.providers.Provider(ctx, cc.WorkspaceID, cc.Provider)
	if err == nil {
		prov, err = oauthflow.ConnectionProvider(prov, cc.Connection)
	}
	if err != nil {
		return err
	}
	access := prov.AccessTokenOrigins()
	if oauthflow.AuthMode(cc.AuthMode).Typed() {
		access = prov.APIKeyOrigins()
	}
	refresh := prov.RefreshTokenOrigins()
	reseal := func(bind func(workspaceID, connectionID string, o vault.Origins) vault.Binding, o vault.Origins, env []byte) ([]byte, error) {
		if len(env) == 0 {
			return env, nil
		}
		sec, err := r.creds.Open(ctx, bind(cc.WorkspaceID, cc.ID, nil), env)
		if err != nil {
			return nil, err
		}
		defer sec.Wipe()
		return r.creds.Seal(ctx, bind(cc.WorkspaceID, cc.ID, o), sec)
	}
	out := store.Credential{AccessOrigins: store.StoredOrigins(access), RefreshOrigins: store.StoredOrigins(refresh)}
	if out.AccessToken, err = reseal(vault.AccessTokenBinding, access, cred.AccessToken); err != nil {
		return err
	}
	if out.RefreshToken, err = reseal(vault.RefreshTokenBinding, refresh, cred.RefreshToken); err != nil {
		return err
	}
	if out.APIKey, err = reseal(vault.APIKeyBinding, access, cred.APIKey); err != nil {
		return err
	}
	return st.BindCredential(ctx, cc.WorkspaceID, cc.ID, cc.Version, out)
}

package refresher_test

import (
	"context"
	"errors"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// addLegacyConn stores an OAuth connection as it was stored before origin binding: its
// tokens sealed without origins, no origins beside them.
func (e *env) addLegacyConn(access, refresh string) store.Connection {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	exp := now.Add(time.Hour)
	c := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: store.DefaultWorkspaceID, Provider: "test", EndUserID: "u",
		AuthMode: "oauth2", Status: store.StatusActive, Scopes: store.Strings{}, ExpiresAt: &exp, NextRefreshAt: &exp,
		Version: 1, CreatedAt: now, UpdatedAt: now}
	cred := store.Credential{ConnectionID: c.ID, WorkspaceID: c.WorkspaceID, TokenType: "Bearer", UpdatedAt: now}
	var err error
	cred.AccessToken, err = e.creds.Seal(ctx, vault.AccessTokenBinding(c.WorkspaceID, c.ID, nil), vault.NewSecret(access))
	require.NoError(e.t, err)
	cred.RefreshToken, err = e.creds.Seal(ctx, vault.RefreshTokenBinding(c.WorkspaceID, c.ID, nil), vault.NewSecret(refresh))
	require.NoError(e.t, err)
	require.NoError(e.t, e.store.CreateConnection(ctx, c, cred))
	return c
}

// faultyBindStore fails or races the migration's writes on cue.
type faultyBindStore struct {
	*store.Store
	calls    atomic.Int64
	failAt   int64                     // the call that fails as if the database were down (0: none)
	beforeAt int64                     // the call before which before runs (0: none)
	before   func(connectionID string) // a concurrent write
}

func (f *faultyBindStore) BindCredential(ctx context.Context, ws, id string, version int64, cred store.Credential) error {
	n := f.calls.Add(1)
	if n == f.failAt {
		return store.ErrUnavailable
	}
	if n == f.beforeAt {
		f.before(id)
	}
	return f.Store.BindCredential(ctx, ws, id, version, cred)
}

// Credentials stored before origin binding open as they were sealed and are refused for
// a refresh until bound (fail closed); the migration binds them to the provider's origins
// as configured when it runs, resumes from its cursor after an interruption, never
// overwrites a concurrent write (compare-and-swap on the version: that row is bound by the
// next run), and the bound ciphertext opens to the same tokens.
func TestBindLegacyCredentials(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		ctx := context.Background()
		e := newEnv(t, dialect.Dialect())
		p := oauthflow.Provider{TokenURL: "https://auth.example.com/token", RevocationURL: "https://auth.example.com/revoke",
			APIBaseURL: "https://api.example.com/v1"}
		e.setProvider(p, oauthflow.ClientCredentials{ClientID: "c"})
		var conns []store.Connection
		access := map[string]string{}
		for i := range 3 {
			c := e.addLegacyConn("at-legacy-"+string(rune('a'+i)), "rt-legacy")
			conns, access[c.ID] = append(conns, c), "at-legacy-"+string(rune('a'+i))
		}
		sort.Slice(conns, func(i, j int) bool { return conns[i].ID < conns[j].ID })
		// Each forced refresh below must reach the origin check: no throttle (forced_test.go).
		r := e.refresher(refresher.Config{ForcedInterval: time.Nanosecond})

		// Before: the access token opens (the token endpoint checks no origin), a refresh
		// is refused without a provider call.
		tok, err := e.tokens(nil).Credential(ctx, store.DefaultWorkspaceID, conns[0].ID, 0)
		require.NoError(t, err)
		require.Equal(t, "at-legacy-", tok.Secret.Reveal()[:10])
		require.Nil(t, tok.Origins)
		_, err = r.ForceRefresh(ctx, store.DefaultWorkspaceID, conns[0].ID)
		var oe *vault.OriginError
		require.True(t, errors.As(err, &oe) && oe.Unbound, "%v", err)

		// Interrupted after the first row (batch of one): the cursor keeps the progress.
		fs := &faultyBindStore{Store: e.store, failAt: 2}
		st, err := r.BindLegacy(ctx, fs, 1)
		require.ErrorIs(t, err, store.ErrUnavailable)
		require.Equal(t, 1, st.Bound)
		cursor, done, err := e.store.BindCursor(ctx, store.BindProgressCredentials)
		require.NoError(t, err)
		require.Equal(t, conns[0].ID, cursor)
		require.False(t, done)

		// Resumed: a live write bumps the next row's version first; that row is skipped,
		// not overwritten.
		fs = &faultyBindStore{Store: e.store, beforeAt: 1, before: func(id string) {
			require.NoError(t, e.store.DB().Model(&store.Connection{}).Where("id = ?", id).
				Update("version", 7).Error)
		}}
		st, err = r.BindLegacy(ctx, fs, 1)
		require.NoError(t, err)
		require.Equal(t, refresher.BindStats{Bound: 1, Skipped: 1}, st)
		require.Nil(t, e.row(conns[1].ID).Credential.AccessOrigins, "the raced row stays unbound")

		// The next run (the migration was marked done: it scans again) binds it.
		st, err = r.BindLegacy(ctx, e.store, 0)
		require.NoError(t, err)
		require.Equal(t, refresher.BindStats{Bound: 1}, st)
		st, err = r.BindLegacy(ctx, e.store, 0)
		require.NoError(t, err)
		require.Equal(t, refresher.BindStats{}, st, "a rerun finds nothing to do")

		for _, c := range conns {
			row := e.row(c.ID)
			require.Equal(t, p.AccessTokenOrigins(), store.BoundOrigins(row.Credential.AccessOrigins))
			require.Equal(t, p.RefreshTokenOrigins(), store.BoundOrigins(row.Credential.RefreshOrigins))
			require.Equal(t, access[c.ID], e.open(row, vault.AccessTokenBinding), "legacy ciphertext, bound, opens")
			require.Equal(t, "rt-legacy", e.open(row, vault.RefreshTokenBinding))
		}

		// A later change of the provider's URLs does not move the bound credential.
		e.setProvider(oauthflow.Provider{TokenURL: "https://evil.example/token"}, oauthflow.ClientCredentials{ClientID: "c"})
		_, err = r.ForceRefresh(ctx, store.DefaultWorkspaceID, conns[0].ID)
		require.ErrorIs(t, err, vault.ErrOriginNotBound)
		require.False(t, errors.As(err, &oe) && oe.Unbound)
	})
}

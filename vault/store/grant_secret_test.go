package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// A minted-mode connection's grant secret is stored with it, read back by every read of
// the credential (the hot path's, the claim's, the sweep's), and kept by a commit, which
// writes only the new access token.
func TestGrantSecretStoredReadAndKept(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		now := time.Now().UTC()
		exp := now.Add(time.Minute)
		c := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: store.DefaultWorkspaceID, Provider: "p", EndUserID: "u",
			AuthMode: "oauth2_client_credentials", Status: store.StatusActive, Scopes: store.Strings{}, ExpiresAt: &exp,
			NextRefreshAt: &exp, Version: 1, CreatedAt: now, UpdatedAt: now}
		origins := store.Strings{"https://idp.example:443"}
		require.NoError(t, s.CreateConnection(ctx, c, store.Credential{ConnectionID: c.ID, WorkspaceID: c.WorkspaceID,
			AccessToken: []byte("at-1"), GrantSecret: []byte("sealed-grant"), GrantOrigins: &origins, UpdatedAt: now}))

		check := func(cr *store.Credential) {
			t.Helper()
			require.NotNil(t, cr)
			require.Equal(t, []byte("sealed-grant"), cr.GrantSecret)
			require.NotNil(t, cr.GrantOrigins)
			require.Equal(t, origins, *cr.GrantOrigins)
		}
		for range 2 { // the read, then the sealed-row cache
			row, err := s.ConnectionWithCredential(ctx, c.WorkspaceID, c.ID)
			require.NoError(t, err)
			check(row.Credential)
		}
		cl, err := s.ClaimRefresh(ctx, store.ClaimRequest{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Holder: "A",
			Now: now, LeaseUntil: now.Add(time.Minute)})
		require.NoError(t, err)
		require.Equal(t, store.ClaimGranted, cl.Outcome)
		check(cl.Row.Credential)
		next := now.Add(time.Hour)
		_, err = s.CommitRefresh(ctx, store.RefreshCommit{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Holder: "A",
			Version: 1, AccessToken: []byte("at-2"), ExpiresAt: &next, NextRefreshAt: &next, Now: now})
		require.NoError(t, err)
		row, err := s.ConnectionWithCredential(ctx, c.WorkspaceID, c.ID)
		require.NoError(t, err)
		check(row.Credential)
		require.Equal(t, []byte("at-2"), row.Credential.AccessToken)
		due, err := s.ClaimDue(ctx, "sweep", next.Add(time.Minute), now, now.Add(time.Minute), 10)
		require.NoError(t, err)
		require.Len(t, due, 1)
		check(due[0].Credential)
	})
}

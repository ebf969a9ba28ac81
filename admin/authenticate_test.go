package admin_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// TestAuthenticateSeveralRows: when a presented key matches several rows (one per hashing
// key it was stored under), any revoked row wins, whichever it is.
func TestAuthenticateSeveralRows(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		svc, _ := newService(t, s)
		mk := func(name string) admin.CreatedKey {
			k, err := svc.CreateAPIKey(ctx, admin.KeyRequest{WorkspaceID: admin.DefaultWorkspaceID, Name: name,
				Scopes: []string{admin.ScopeAdmin}, Actor: "test"})
			require.NoError(t, err)
			return k
		}
		older, newer := mk("older"), mk("newer")
		_, err := svc.RotateProxyKey(ctx, admin.PurposeAPIKeyHash, "test")
		require.NoError(t, err)
		active, err := svc.APIKeyHashKeys().Active(ctx)
		require.NoError(t, err)
		// A second row of each key, under the new hashing key.
		second := map[string]string{}
		for _, k := range []admin.CreatedKey{older, newer} {
			row := store.APIKey{ID: ids.New(ids.APIKey), WorkspaceID: admin.DefaultWorkspaceID, Name: k.Name, Prefix: k.Prefix,
				Hash: active.MAC(k.Key.Bytes()), HashKeyID: active.KID(), Scopes: store.Strings{admin.ScopeAdmin}}
			require.NoError(t, s.InsertAPIKey(ctx, row))
			second[k.Name] = row.ID
			p, err := svc.Authenticate(ctx, k.Key)
			require.NoError(t, err)
			require.Equal(t, k.ID, p.KeyID, "the oldest row")
		}

		require.NoError(t, svc.RevokeAPIKey(ctx, admin.DefaultWorkspaceID, older.ID, "test")) // the first row
		require.NoError(t, svc.RevokeAPIKey(ctx, admin.DefaultWorkspaceID, second["newer"], "test"))
		for _, k := range []admin.CreatedKey{older, newer} {
			_, err := svc.Authenticate(ctx, k.Key)
			require.ErrorIs(t, err, problem.ErrUnauthorized, k.Name)
		}
	})
}

// TestEnsureBootstrapKey: the bootstrap key is made once, found under an earlier hashing
// key after a rotation, and never made again once revoked, whatever key hashed it.
func TestEnsureBootstrapKey(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		deps := admin.Deps{Store: s, Creds: keyring(t, vault.PurposeCredentials, s), Secrets: keyring(t, vault.PurposeClientSecrets, s)}
		start := func() *admin.Service { // a process start: the key sets load anew
			svc, err := admin.New(admin.Config{}, deps)
			require.NoError(t, err)
			return svc
		}
		svc := start()
		key := admin.NewAPIKey()
		require.NoError(t, svc.EnsureBootstrapKey(ctx, key))
		p, err := svc.Authenticate(ctx, key)
		require.NoError(t, err)
		_, err = svc.RotateProxyKey(ctx, admin.PurposeAPIKeyHash, "test")
		require.NoError(t, err)
		require.NoError(t, svc.EnsureBootstrapKey(ctx, key))
		keys, err := svc.ListAPIKeys(ctx, admin.DefaultWorkspaceID)
		require.NoError(t, err)
		require.Len(t, keys, 1)

		require.NoError(t, svc.RevokeAPIKey(ctx, admin.DefaultWorkspaceID, p.KeyID, "test"))
		_, err = svc.RotateProxyKey(ctx, admin.PurposeAPIKeyHash, "test")
		require.NoError(t, err)
		svc2 := start() // the first hashing key has retired meanwhile
		var first store.ProxyKey
		require.NoError(t, s.DB().Where("id = ?", "pk_apikey_hash_1").Take(&first).Error)
		require.Equal(t, store.ProxyKeyRetired, first.State)
		require.ErrorIs(t, svc2.EnsureBootstrapKey(ctx, key), admin.ErrBootstrapKeyRevoked)
		keys, err = svc2.ListAPIKeys(ctx, admin.DefaultWorkspaceID)
		require.NoError(t, err)
		require.Empty(t, keys)
		_, err = svc2.Authenticate(ctx, key)
		require.ErrorIs(t, err, problem.ErrUnauthorized)
	})
}

package admin_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/local"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func keyring(t *testing.T, purpose vault.Purpose, s *store.Store) *vault.Keyring {
	t.Helper()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	kek, err := local.New(raw)
	require.NoError(t, err)
	ring, err := kms.NewRing(kek)
	require.NoError(t, err)
	kr, err := vault.NewKeyring(purpose, ring, s)
	require.NoError(t, err)
	return kr
}

// newService is an admin service on s (migrated), with the default workspace.
func newService(t *testing.T, s *store.Store) (*admin.Service, *clock) {
	t.Helper()
	require.NoError(t, s.EnsureDefaultWorkspace(context.Background()))
	c := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	svc, err := admin.New(admin.Config{AuthCacheTTL: time.Minute},
		admin.Deps{Store: s, Creds: keyring(t, vault.PurposeCredentials, s), Secrets: keyring(t, vault.PurposeClientSecrets, s)},
		admin.WithClock(c.now))
	require.NoError(t, err)
	return svc, c
}

func TestKeyFormat(t *testing.T) {
	k := admin.NewAPIKey()
	require.True(t, admin.ValidKeyFormat(k.Reveal()))
	require.True(t, strings.HasPrefix(k.Reveal(), admin.KeyPrefix))
	require.Equal(t, k.Reveal()[3:11], admin.KeyDisplayPrefix(k))
	for _, bad := range []string{"", "ap_", "ap_short", "xx_" + strings.Repeat("a", 40), "ap_" + strings.Repeat("a", 31),
		"ap_" + strings.Repeat("a", 129), "ap_" + strings.Repeat("a", 39) + "+"} {
		require.False(t, admin.ValidKeyFormat(bad), bad)
	}
}

func TestScopes(t *testing.T) {
	p := admin.Principal{Scopes: []string{admin.ScopeAdmin}}
	for _, sc := range admin.AllScopes {
		require.Equal(t, sc != admin.ScopeWorkspacesWrite, p.Has(sc), sc)
	}
	require.True(t, admin.Principal{Scopes: []string{admin.ScopeWorkspacesWrite}}.Has(admin.ScopeWorkspacesWrite))
	require.False(t, admin.Principal{Scopes: []string{admin.ScopeTokensRead}}.Has(admin.ScopeAuditRead))

	require.ErrorIs(t, admin.ValidScopes(nil, true), problem.ErrInvalidRequest)
	require.ErrorIs(t, admin.ValidScopes([]string{"tokens:write"}, true), problem.ErrInvalidRequest)
	require.ErrorIs(t, admin.ValidScopes([]string{admin.ScopeWorkspacesWrite}, false), problem.ErrForbidden)
	require.NoError(t, admin.ValidScopes([]string{admin.ScopeWorkspacesWrite, admin.ScopeAdmin}, true))
	require.NoError(t, admin.ValidKeyName("ci deploy-1"))
	require.ErrorIs(t, admin.ValidKeyName(" leading space"), problem.ErrInvalidRequest)
}

// TestAuthenticate: a created key authenticates to its principal; a revoked one, an
// unknown one and one whose hash names another hashing key do not; a hashing-key rotation
// keeps old keys working and hashes new ones with the new key.
func TestAuthenticate(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		svc, c := newService(t, s)
		k, err := svc.CreateAPIKey(ctx, admin.KeyRequest{WorkspaceID: admin.DefaultWorkspaceID, Name: "k",
			Scopes: []string{admin.ScopeTokensRead, admin.ScopeTokensRead}, Actor: "test"})
		require.NoError(t, err)
		require.Equal(t, []string{admin.ScopeTokensRead}, k.Scopes, "sorted, without duplicates")
		p, err := svc.Authenticate(ctx, k.Key)
		require.NoError(t, err)
		require.Equal(t, admin.Principal{KeyID: k.ID, WorkspaceID: admin.DefaultWorkspaceID, Scopes: k.Scopes}, p)

		_, err = svc.Authenticate(ctx, admin.NewAPIKey())
		require.ErrorIs(t, err, problem.ErrUnauthorized)

		r, err := svc.RotateProxyKey(ctx, admin.PurposeAPIKeyHash, "test")
		require.NoError(t, err)
		_, err = svc.Authenticate(ctx, k.Key)
		require.NoError(t, err, "a key hashed with the old hashing key keeps working")
		k2, err := svc.CreateAPIKey(ctx, admin.KeyRequest{WorkspaceID: admin.DefaultWorkspaceID, Name: "k2",
			Scopes: []string{admin.ScopeAdmin}, Actor: "test"})
		require.NoError(t, err)
		keys, err := svc.ListAPIKeys(ctx, admin.DefaultWorkspaceID)
		require.NoError(t, err)
		stale := map[string]bool{}
		for _, lk := range keys {
			stale[lk.ID] = lk.HashKeyStale
			if lk.ID == k2.ID {
				require.Equal(t, r.KID, lk.HashKeyID)
			}
		}
		require.Equal(t, map[string]bool{k.ID: true, k2.ID: false}, stale)

		require.NoError(t, svc.RevokeAPIKey(ctx, admin.DefaultWorkspaceID, k.ID, "test"))
		_, err = svc.Authenticate(ctx, k.Key)
		require.ErrorIs(t, err, problem.ErrUnauthorized, "a revoke on this replica is seen at once")

		// A row whose hash_key_id names another key than the one that made its hash is
		// refused once the cached lookup expires.
		_, err = svc.Authenticate(ctx, k2.Key)
		require.NoError(t, err)
		require.NoError(t, s.DB().Model(&store.APIKey{}).Where("id = ?", k2.ID).Update("hash_key_id", r.Rotated[0]).Error)
		_, err = svc.Authenticate(ctx, k2.Key)
		require.NoError(t, err, "cached")
		c.t = c.t.Add(time.Minute + time.Second)
		_, err = svc.Authenticate(ctx, k2.Key)
		require.ErrorIs(t, err, problem.ErrUnauthorized)
	})
}

// TestWorkspaces: a workspace gets its own DEKs and a first admin key that works in it
// only; names and audit retentions are checked.
func TestWorkspaces(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		svc, _ := newService(t, s)
		w, err := svc.CreateWorkspace(ctx, "acme", "test")
		require.NoError(t, err)
		require.NotNil(t, w.APIKey)
		p, err := svc.Authenticate(ctx, w.APIKey.Key)
		require.NoError(t, err)
		require.Equal(t, w.ID, p.WorkspaceID)
		require.Equal(t, []string{admin.ScopeAdmin}, p.Scopes)
		var n int64
		require.NoError(t, s.DB().Table("deks").Where("workspace_id = ?", w.ID).Count(&n).Error)
		require.EqualValues(t, 2, n, "one DEK per purpose")

		_, err = svc.CreateWorkspace(ctx, "acme", "test")
		require.ErrorIs(t, err, problem.ErrConflict)
		_, err = svc.CreateWorkspace(ctx, "Not OK", "test")
		require.ErrorIs(t, err, problem.ErrInvalidRequest)

		d := 720 * time.Hour
		got, err := svc.SetAuditRetention(ctx, w.ID, &d, "test")
		require.NoError(t, err)
		require.Equal(t, "720h0m0s", got.AuditRetention)
		short := time.Hour
		_, err = svc.SetAuditRetention(ctx, w.ID, &short, "test")
		require.ErrorIs(t, err, admin.ErrInvalidRetention)
		got, err = svc.SetAuditRetention(ctx, w.ID, nil, "test")
		require.NoError(t, err)
		require.Empty(t, got.AuditRetention)

		list, err := svc.ListWorkspaces(ctx)
		require.NoError(t, err)
		require.Len(t, list, 2)
		for _, l := range list {
			require.Nil(t, l.APIKey, "a listing never carries a key")
		}
	})
}

// TestProxyKeyRotation: an unknown purpose is refused; a rotated state key is
// verify-only and still found by kid; a rotated checkpoint key stays published.
func TestProxyKeyRotation(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		svc, _ := newService(t, s)
		_, err := svc.RotateProxyKey(ctx, "tokens", "test")
		require.ErrorIs(t, err, admin.ErrUnknownPurpose)

		old, err := svc.StateKeys().Active(ctx)
		require.NoError(t, err)
		r, err := svc.RotateProxyKey(ctx, admin.PurposeState, "test")
		require.NoError(t, err)
		require.Equal(t, []string{old.KID()}, r.Rotated)
		active, err := svc.StateKeys().Active(ctx)
		require.NoError(t, err)
		require.Equal(t, r.KID, active.KID())
		k, err := svc.StateKeys().ByKid(ctx, old.KID())
		require.NoError(t, err)
		require.Equal(t, old.Material(), k.Material())

		before, err := svc.CheckpointKeys().TrustedKeyIDs(ctx)
		require.NoError(t, err)
		cr, err := svc.RotateProxyKey(ctx, admin.PurposeCheckpoint, "test")
		require.NoError(t, err)
		after, err := svc.CheckpointKeys().TrustedKeyIDs(ctx)
		require.NoError(t, err)
		require.Equal(t, append([]string{cr.CheckpointKID}, before...), after)

		_, err = svc.RotateWebhookSecret(ctx, admin.DefaultWorkspaceID, "test")
		require.ErrorIs(t, err, problem.ErrNotFound, "no endpoint, nothing to rotate")
		_, err = svc.PutWebhook(ctx, admin.DefaultWorkspaceID, "https://hooks.example.com/x", "test")
		require.NoError(t, err)
		wr, err := svc.RotateWebhookSecret(ctx, admin.DefaultWorkspaceID, "test")
		require.NoError(t, err)
		require.NotEqual(t, wr.KID, wr.PreviousKID)
	})
}

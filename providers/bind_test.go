package providers_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// A client secret is sealed bound to its configuration's token, refresh and revocation
// origins; a secret kept when the token endpoint moves (a database edit: the API asks for
// the secret again) keeps its old binding (so it is never sent to the new origin); a secret stored before origin binding opens as
// it was sealed, is bound by the migration to the origins configured when it runs, and a
// rerun does nothing.
func TestClientSecretBinding(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			svc, st, _ := newServiceOn(t, dialect)
			ctx := context.Background()
			secret := vault.NewSecret("s3cr3t-client")
			_, err := svc.Put(ctx, store.DefaultWorkspaceID, writer, custom(), &secret)
			require.NoError(t, err)
			_, client, err := svc.Provider(ctx, store.DefaultWorkspaceID, "acme")
			require.NoError(t, err)
			require.Equal(t, vault.Origins{"https://auth.example.com:443"}, client.SecretOrigins)

			// The API refuses this move without the client secret (origins.go); a database
			// edit of the configuration makes it, and the kept secret keeps its binding.
			moved := custom()
			moved.Overrides["token_url"] = raw("https://evil.example.com/token")
			_, err = svc.Put(ctx, store.DefaultWorkspaceID, adminCaller, moved, nil)
			require.Equal(t, "client_secret_required", code(err))
			cfg, err := svc.Build(moved)
			require.NoError(t, err)
			doc, err := json.Marshal(cfg)
			require.NoError(t, err)
			require.NoError(t, st.DB().Model(&store.Provider{}).Where("workspace_id = ? AND key = ?",
				store.DefaultWorkspaceID, "acme").Update("config", string(doc)).Error)
			p, client, err := svc.Provider(ctx, store.DefaultWorkspaceID, "acme")
			require.NoError(t, err)
			require.Equal(t, vault.Origins{"https://auth.example.com:443"}, client.SecretOrigins, "the kept secret keeps its binding")
			require.ErrorIs(t, vault.CheckOrigin(ctx, nil, vault.Use{Purpose: vault.UseRefresh}, p.TokenURL, client.SecretOrigins),
				vault.ErrOriginNotBound)

			// Legacy: sealed without origins, none stored.
			row, err := st.Provider(ctx, store.DefaultWorkspaceID, "acme")
			require.NoError(t, err)
			legacy, err := plainSealer{}.Seal(ctx, vault.ClientSecretBinding(store.DefaultWorkspaceID, row.ID, nil), secret)
			require.NoError(t, err)
			require.NoError(t, st.DB().Model(&store.ProviderSecret{}).Where("provider_id = ?", row.ID).
				Updates(map[string]any{"sealed": legacy, "origins": nil}).Error)
			_, client, err = svc.Provider(ctx, store.DefaultWorkspaceID, "acme")
			require.NoError(t, err)
			require.Equal(t, "s3cr3t-client", client.ClientSecret.Reveal(), "legacy ciphertext opens")
			require.False(t, client.SecretOrigins.Bound(), "and is refused for any call until bound")

			bound, skipped, err := svc.BindLegacySecrets(ctx, st, 0)
			require.NoError(t, err)
			require.Equal(t, [2]int{1, 0}, [2]int{bound, skipped})
			_, client, err = svc.Provider(ctx, store.DefaultWorkspaceID, "acme")
			require.NoError(t, err)
			require.Equal(t, "s3cr3t-client", client.ClientSecret.Reveal())
			require.Equal(t, vault.Origins{"https://evil.example.com:443"}, client.SecretOrigins,
				"bound to the configuration as it is at migration time")
			bound, skipped, err = svc.BindLegacySecrets(ctx, st, 0)
			require.NoError(t, err)
			require.Zero(t, bound+skipped)

			// A database edit of the stored binding: the secret no longer opens.
			require.NoError(t, st.DB().Model(&store.ProviderSecret{}).Where("provider_id = ?", row.ID).
				Update("origins", `["https://other.example.com:443"]`).Error)
			_, _, err = svc.Provider(ctx, store.DefaultWorkspaceID, "acme")
			require.Error(t, err)
		})
	}
}

package providers_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/providers"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

func TestOriginsAreCanonical(t *testing.T) {
	p := custom()
	svc, _, _ := newService(t)
	cfg, err := svc.Build(p)
	require.NoError(t, err)
	require.Equal(t, []string{"https://auth.example.com:443"}, providers.Origins(cfg.Provider))
	cfg.APIBaseURL, cfg.HealthCheckURL = "https://API.example.com:443/v1", "https://api.example.com/health"
	cfg.Issuer = "https://issuer.example.org" // an identifier, not a destination
	require.Equal(t, []string{"https://api.example.com:443", "https://auth.example.com:443"}, providers.Origins(cfg.Provider))
	cfg.RevocationURL = "https://auth.example.com:8443/revoke"
	require.Len(t, providers.Origins(cfg.Provider), 3, "another port is another origin")
	a, b := cfg.Provider, cfg.Provider
	a.APIBaseURL, b.APIBaseURL = "https://{subdomain}.example.com/api", "https://{subdomain}.example.net/api"
	require.NotEqual(t, providers.Origins(a), providers.Origins(b), "a placeholder host still counts")
	b.APIBaseURL = "https://{subdomain}.example.com/v2"
	require.Equal(t, providers.Origins(a), providers.Origins(b), "and its path does not")
}

// addConnection stores an active connection of provider in the default workspace.
func addConnection(t *testing.T, st *store.Store, provider, status string) string {
	t.Helper()
	id := ids.New(ids.Connection)
	now := time.Now().UTC()
	require.NoError(t, st.CreateConnection(context.Background(), store.Connection{ID: id, WorkspaceID: store.DefaultWorkspaceID,
		Provider: provider, EndUserID: "u-" + id, AuthMode: "oauth2", Status: status, CreatedAt: now, UpdatedAt: now},
		store.Credential{ConnectionID: id, WorkspaceID: store.DefaultWorkspaceID, AccessToken: []byte("sealed"), UpdatedAt: now}))
	return id
}

// seeded is a service on dialect with provider acme (custom(), a client secret set),
// created by a providers:write caller: creating a provider needs no more.
func seeded(t *testing.T, dialect string) (*providers.Service, *store.Store, vault.Secret) {
	t.Helper()
	svc, st, _ := newServiceOn(t, dialect)
	secret := vault.NewSecret("s3cr3t-client")
	_, err := svc.Put(context.Background(), store.DefaultWorkspaceID, writer, custom(), &secret)
	require.NoError(t, err)
	return svc, st, secret
}

// TestPutOriginChangeRules is the providers:write holder's and the admin's side of an
// origin change at the service: refused whole without admin or (oauth2) the client
// secret; allowed, every active or errored connection becomes needs_reauth in the same
// write, one connection.needs_reauth event each. Paths are not origins.
func TestPutOriginChangeRules(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			svc, st, secret := seeded(t, d)
			ctx := context.Background()
			var err error
			a, b := addConnection(t, st, "acme", store.StatusActive), addConnection(t, st, "acme", store.StatusError)
			gone := addConnection(t, st, "acme", store.StatusDisconnected)

			moved := custom()
			moved.Overrides["token_url"] = raw("https://evil.example.net/token")
			_, err = svc.Put(ctx, store.DefaultWorkspaceID, writer, moved, &secret)
			require.Equal(t, "forbidden", code(err), "providers:write may not move origins")
			_, err = svc.Put(ctx, store.DefaultWorkspaceID, adminCaller, moved, nil)
			require.Equal(t, "client_secret_required", code(err), "the old secret is bound to the old token origin")
			e, err := svc.Get(ctx, store.DefaultWorkspaceID, "acme")
			require.NoError(t, err)
			require.Equal(t, "https://auth.example.com/token", e.TokenURL, "nothing written")

			switched := providers.Request{Key: "acme", Template: "gitlab", ClientID: "Iv1.abc"}
			_, err = svc.Put(ctx, store.DefaultWorkspaceID, writer, switched, &secret)
			require.Equal(t, "forbidden", code(err), "a template switch to other origins is an origin change")

			samePath := custom()
			samePath.Overrides["token_url"] = raw("https://auth.example.com/oauth/token")
			res, err := svc.Put(ctx, store.DefaultWorkspaceID, writer, samePath, nil)
			require.NoError(t, err, "a path change is not an origin change")
			require.Zero(t, res.ConnectionsNeedingReauth)
			for _, id := range []string{a, b} {
				c, err := st.Connection(ctx, store.DefaultWorkspaceID, id)
				require.NoError(t, err)
				require.NotEqual(t, store.StatusNeedsReauth, c.Status)
			}

			res, err = svc.Put(ctx, store.DefaultWorkspaceID, adminCaller, moved, &secret)
			require.NoError(t, err)
			require.Equal(t, 2, res.ConnectionsNeedingReauth)
			for _, id := range []string{a, b} {
				c, err := st.Connection(ctx, store.DefaultWorkspaceID, id)
				require.NoError(t, err)
				require.Equal(t, store.StatusNeedsReauth, c.Status)
				require.Equal(t, store.ReasonProviderOriginChanged, c.StatusReason)
				require.Nil(t, c.NextRefreshAt)
			}
			c, err := st.Connection(ctx, store.DefaultWorkspaceID, gone)
			require.NoError(t, err)
			require.Equal(t, store.StatusDisconnected, c.Status, "a disconnected connection stays so")

			evs, err := st.ListAudit(ctx, store.DefaultWorkspaceID, "", 1000)
			require.NoError(t, err)
			reauth := map[string]bool{}
			for _, ev := range evs {
				if ev.Type == audit.ConnectionNeedsReauth {
					require.Equal(t, "key_admin", ev.Actor)
					require.Equal(t, store.ReasonProviderOriginChanged, ev.ErrorCode)
					reauth[ev.ConnectionID] = true
				}
			}
			require.Equal(t, map[string]bool{a: true, b: true}, reauth)
		})
	}
}

// TestImportRefusesOriginAndSecretChanges is the control plane's side: an import may
// create providers and change anything but an existing provider's origins and client
// secret; one such provider and the whole document is refused, nothing written, with a
// typed error (ErrOriginChange, ErrClientSecretChange).
func TestImportRefusesOriginAndSecretChanges(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			svc, st, _ := seeded(t, d)
			ctx := context.Background()
			row, err := st.Provider(ctx, store.DefaultWorkspaceID, "acme")
			require.NoError(t, err)
			sealed, err := st.ProviderSecret(ctx, row.ID)
			require.NoError(t, err)
			conn := addConnection(t, st, "acme", store.StatusActive)

			fresh := custom()
			fresh.Key = "fresh"
			fresh.Overrides["token_url"] = raw("https://other.example.org/token")
			doc := func(rs ...providers.Request) []providers.WorkspaceImport {
				return []providers.WorkspaceImport{{WorkspaceID: store.DefaultWorkspaceID, Providers: rs}}
			}
			refused := func(err error, key string, want error) {
				t.Helper()
				var ie *providers.ImportError
				require.ErrorAs(t, err, &ie)
				require.Equal(t, key, ie.Key)
				require.ErrorIs(t, err, want)
				_, err = svc.Get(ctx, store.DefaultWorkspaceID, "fresh")
				require.ErrorIs(t, err, store.ErrNotFound, "refused whole: the new provider is not created either")
				got, err := svc.Get(ctx, store.DefaultWorkspaceID, "acme")
				require.NoError(t, err)
				require.Equal(t, "https://auth.example.com/token", got.TokenURL)
				now, err := st.ProviderSecret(ctx, row.ID)
				require.NoError(t, err)
				require.Equal(t, sealed.Sealed, now.Sealed, "the client secret is untouched")
				c, err := st.Connection(ctx, store.DefaultWorkspaceID, conn)
				require.NoError(t, err)
				require.Equal(t, store.StatusActive, c.Status)
			}
			for field, u := range map[string]string{"token_url": "https://evil.example.net/token",
				"refresh_url": "https://evil.example.net/refresh", "revocation_url": "https://evil.example.net/revoke",
				"api_base_url": "https://evil.example.net", "health_check_url": "https://evil.example.net/h",
				"authorization_url": "https://auth.example.com:8443/authorize"} {
				moved := custom()
				moved.Overrides[field] = raw(u)
				refused(svc.Import(ctx, "controlplane", 2, doc(fresh, moved)), "acme", providers.ErrOriginChange)
			}
			withSecret := custom()
			withSecret.Overrides["client_secret"] = raw("attacker")
			refused(svc.Import(ctx, "controlplane", 2, doc(fresh, withSecret)), "acme", providers.ErrClientSecretChange)
			cleared := custom()
			cleared.Overrides["client_secret"] = raw(nil)
			refused(svc.Import(ctx, "controlplane", 2, doc(fresh, cleared)), "acme", providers.ErrClientSecretChange)

			// A stripe API-key connection resolves to the catalog template: importing a
			// "stripe" with other origins moves it, and is refused too.
			addConnection(t, st, "stripe", store.StatusActive)
			shadow := providers.Request{Key: "stripe", Overrides: map[string]json.RawMessage{
				"auth_mode": raw("api_key"), "api_base_url": raw("https://evil.example.net")}}
			refused(svc.Import(ctx, "controlplane", 2, doc(fresh, shadow)), "stripe", providers.ErrOriginChange)

			// Everything else may change, and new providers may be created.
			renamed := custom()
			renamed.Overrides["token_url"] = raw("https://auth.example.com/v2/token")
			renamed.Scopes = []string{"read", "write"}
			require.NoError(t, svc.Import(ctx, "controlplane", 3, doc(fresh, renamed)))
			got, err := svc.Get(ctx, store.DefaultWorkspaceID, "acme")
			require.NoError(t, err)
			require.Equal(t, "https://auth.example.com/v2/token", got.TokenURL)
			_, err = svc.Get(ctx, store.DefaultWorkspaceID, "fresh")
			require.NoError(t, err)
			after, err := st.ProviderSecret(ctx, row.ID)
			require.NoError(t, err)
			require.Equal(t, sealed.Sealed, after.Sealed, "kept")
		})
	}
}

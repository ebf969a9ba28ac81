package proxy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// bootstrapRows returns the rows of the bootstrap key (its name), revoked ones included.
func bootstrapRows(t *testing.T, h *harness) []store.APIKey {
	t.Helper()
	var rows []store.APIKey
	require.NoError(t, h.app.Store.DB().Where("name = ?", "bootstrap").Order("created_at, id").Find(&rows).Error)
	return rows
}

// TestBootstrapKeyStaysRevoked: a revoked bootstrap key is not recreated by a restart with
// the same AUTHPIPE_BOOTSTRAP_API_KEY, even after the apikey-hash key it was stored under
// was rotated away (and retired); an unrevoked one is not duplicated by a restart.
func TestBootstrapKeyStaysRevoked(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			// The sequence: bootstrap, rotate apikey-hash, revoke, restart.
			h := newHarness(t, dialect, nil)
			rotateProxyKey(h, "apikey-hash")
			other := h.createKey("admin") // hashed under the new key
			rows := bootstrapRows(t, h)
			require.Len(t, rows, 1)
			h.expect(h.do("DELETE", "/v1/api-keys/"+rows[0].ID, other, nil), 204, "")
			h.expect(h.do("GET", "/v1/api-keys", bootstrapKey, nil), 401, "unauthorized")

			// Restart with the same key: an error naming the variable, no new row, still 401;
			// the hashing key the revoked row names has retired meanwhile.
			h2 := h.restart()
			require.Equal(t, store.ProxyKeyRetired, proxyKeyState(t, h2, "pk_apikey_hash_1"))
			rows = bootstrapRows(t, h2)
			require.Len(t, rows, 1)
			require.NotNil(t, rows[0].RevokedAt)
			h2.expect(h2.do("GET", "/v1/api-keys", bootstrapKey, nil), 401, "unauthorized")
			h2.expect(h2.do("POST", "/v1/workspaces", bootstrapKey, map[string]any{"name": "x"}), 401, "unauthorized")
			list := h2.expect(h2.do("GET", "/v1/api-keys", other, nil), 200, "")
			for _, k := range list.Body["api_keys"].([]any) {
				require.NotEqual(t, "bootstrap", k.(map[string]any)["name"])
			}
			require.Contains(t, h2.logs.String(), config.EnvBootstrapAPIKey)
			require.NotContains(t, h2.logs.String(), bootstrapKey)
			require.Len(t, bootstrapRows(t, h2.restart()), 1, "and again")

			// Unrevoked: a restart after a rotation keeps the one row, under the old hashing key.
			u := newHarness(t, dialect, nil)
			rotateProxyKey(u, "apikey-hash")
			u2 := u.restart()
			rows = bootstrapRows(t, u2)
			require.Len(t, rows, 1)
			require.Equal(t, "pk_apikey_hash_1", rows[0].HashKeyID)
			u2.expect(u2.do("GET", "/v1/api-keys", bootstrapKey, nil), 200, "")
		})
	}
}

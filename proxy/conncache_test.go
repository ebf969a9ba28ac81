package proxy_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// The token endpoint serves sealed rows from a cache (vault/store/conncache.go). A change
// to a connection is served at once by the replica that made it and within well under a
// second by another replica on the same database (NOTIFY), whatever the caches held.
func TestTokenCacheAcrossReplicas(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"AUTHPIPE_DATABASE_URL":          storetest.URL(t, store.Postgres),
		"AUTHPIPE_KEK_URI":               "local://" + filepath.Join(dir, "kek.key"),
		"AUTHPIPE_CLIENT_SECRET_KEK_URI": "local://" + filepath.Join(dir, "cs-kek.key"),
	}
	h1 := newHarness(t, store.Postgres, env)
	h2 := newHarness(t, store.Postgres, env)
	for _, h := range []*harness{h1, h2} {
		require.Eventually(t, h.app.Store.ConnCacheOn, 5*time.Second, 10*time.Millisecond, "the cache listener connects")
	}
	writer := h1.createKey("connections:write")
	reader := h1.createKey("tokens:read")
	newConn := func(t *testing.T) (string, string) {
		c := h1.expect(h1.do("POST", "/v1/connections", writer, map[string]any{
			"provider": "stripe", "end_user_id": "u", "api_key": "sk_test_first000000000000"}), 201, "")
		var row store.Connection
		require.NoError(t, h1.app.Store.DB().Where("id = ?", c.Body["id"]).Take(&row).Error)
		return row.ID, row.WorkspaceID
	}
	token := func(h *harness, id string) resp { return h.do("GET", "/v1/connections/"+id+"/token", reader, nil) }
	warm := func(t *testing.T, id string) {
		time.Sleep(100 * time.Millisecond) // the creation's own notifications have come
		for _, h := range []*harness{h1, h2} {
			for range 3 {
				require.Equal(t, "sk_test_first000000000000", h.expect(token(h, id), 200, "").Body["api_key"])
			}
		}
	}
	cases := []struct {
		name  string
		write func(t *testing.T, ws, id string)
		ok    func(r resp) bool
	}{
		{"reconnect: a new credential", func(t *testing.T, ws, id string) {
			var cr store.Credential
			require.NoError(t, h1.app.Store.DB().Where("connection_id = ?", id).Take(&cr).Error)
			sealed, err := h1.app.Creds.Seal(context.Background(), vault.APIKeyBinding(ws, id, store.BoundOrigins(cr.AccessOrigins)),
				vault.NewSecret("sk_test_second00000000000"))
			require.NoError(t, err)
			require.NoError(t, h1.app.Store.DB().Model(&store.Credential{}).Where("connection_id = ?", id).
				Update("api_key", sealed).Error)
		}, func(r resp) bool { return r.Status == 200 && r.Body["api_key"] == "sk_test_second00000000000" }},
		{"needs_reauth", func(t *testing.T, _, id string) {
			require.NoError(t, h1.app.Store.DB().Model(&store.Connection{}).Where("id = ?", id).
				Update("status", store.StatusNeedsReauth).Error)
		}, func(r resp) bool { return r.Status == 409 && r.Body["code"] == "needs_reauth" }},
		{"disconnect", func(t *testing.T, _, id string) {
			h1.expect(h1.do("DELETE", "/v1/connections/"+id, writer, nil), 200, "")
		}, func(r resp) bool { return r.Status == 410 && r.Body["code"] == "disconnected" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, ws := newConn(t)
			warm(t, id)
			written := time.Now()
			tc.write(t, ws, id)
			r := token(h1, id)
			require.True(t, tc.ok(r), "the writing replica serves the change at once: %d %s", r.Status, r.Raw)
			require.Eventually(t, func() bool { return tc.ok(token(h2, id)) }, time.Second, 5*time.Millisecond)
			require.Less(t, time.Since(written), 500*time.Millisecond, "by notification, not the TTL")
		})
	}
}

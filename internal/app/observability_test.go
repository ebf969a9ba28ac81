package app_test

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// The app's /metrics shows connections by status (CountConnections, the lifecycle's
// one-a-minute job) and the database pool's statistics.
func TestAppMetricsCountConnectionsAndPool(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"AUTHPIPE_DATABASE_URL":          storetest.URL(t, store.SQLite),
		"AUTHPIPE_KEK_URI":               "local://" + filepath.Join(dir, "kek.key"),
		"AUTHPIPE_CLIENT_SECRET_KEK_URI": "local://" + filepath.Join(dir, "cs.key"),
	}
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	a, err := app.New(context.Background(), cfg, app.WithLogOutput(io.Discard))
	require.NoError(t, err)
	defer a.Close()
	ctx := context.Background()
	require.NoError(t, a.Bootstrap(ctx))
	now := time.Now().UTC()
	c := store.Connection{ID: "conn_metrics1", WorkspaceID: store.DefaultWorkspaceID, Provider: "p", EndUserID: "u",
		AuthMode: "api_key", Status: store.StatusNeedsReauth, Scopes: store.Strings{}, Version: 1, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, a.Store.CreateConnection(ctx, c, store.Credential{ConnectionID: c.ID, WorkspaceID: c.WorkspaceID,
		AccessToken: []byte("sealed"), UpdatedAt: now}))
	require.NoError(t, a.CountConnections(ctx))

	rec := httptest.NewRecorder()
	a.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	require.Contains(t, body, `authpipe_connections{status="needs_reauth"} 1`)
	require.Contains(t, body, `authpipe_connections{status="active"} 0`)
	require.Contains(t, body, `go_sql_open_connections{db_name="authpipe"}`)
}

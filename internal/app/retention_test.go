package app_test

import (
	"context"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// A workspace's own audit retention wins over AUTHPIPE_AUDIT_RETENTION when the purge
// prunes; a workspace without one keeps the deployment's.
func TestPurgeHonoursPerWorkspaceAuditRetention(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"AUTHPIPE_DATABASE_URL":          storetest.URL(t, store.SQLite),
		"AUTHPIPE_KEK_URI":               "local://" + filepath.Join(dir, "kek.key"),
		"AUTHPIPE_CLIENT_SECRET_KEK_URI": "local://" + filepath.Join(dir, "cs.key"),
		"AUTHPIPE_AUDIT_RETENTION":       "2160h",
	}
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	var mu sync.Mutex
	now := time.Now().UTC()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a, err := app.New(context.Background(), cfg, app.WithLogOutput(io.Discard), app.WithClock(clock))
	require.NoError(t, err)
	defer a.Close()
	ctx := context.Background()
	require.NoError(t, a.Bootstrap(ctx))
	other, err := a.Admin.CreateWorkspace(ctx, "other", "test")
	require.NoError(t, err)
	for _, ws := range []string{store.DefaultWorkspaceID, other.ID} {
		for range 3 {
			require.NoError(t, a.Store.AppendEvents(ctx, audit.Event{WorkspaceID: ws, Type: audit.TokenRead, Actor: "t", Outcome: audit.Success}))
		}
	}
	day := 24 * time.Hour
	_, err = a.Store.SetAuditRetention(ctx, store.DefaultWorkspaceID, &day)
	require.NoError(t, err)

	mu.Lock()
	now = now.Add(25 * time.Hour)
	mu.Unlock()
	// One fresh event in each chain, so every chain has something younger than any cutoff.
	for _, ws := range []string{store.DefaultWorkspaceID, other.ID} {
		require.NoError(t, a.Store.AppendEvents(ctx, audit.Event{WorkspaceID: ws, Type: audit.TokenRead, Actor: "t", Outcome: audit.Success}))
	}
	rep, err := a.Purge(ctx, false)
	require.NoError(t, err)
	require.Positive(t, rep.AuditEvents, "the default workspace's 24h retention pruned its old events")

	left := func(ws string) int {
		evs, err := a.Store.ListAudit(ctx, ws, "", 1000)
		require.NoError(t, err)
		return len(evs)
	}
	require.Less(t, left(store.DefaultWorkspaceID), 5, "old events of the 24h workspace are gone")
	require.GreaterOrEqual(t, left(other.ID), 6, "the other workspace keeps the deployment's 90 days")
	for _, ws := range []string{store.DefaultWorkspaceID, other.ID} {
		res, err := a.Admin.VerifyAudit(ctx, ws, true) // the anchor under the deployment's checkpoint keys
		require.NoError(t, err)
		require.True(t, res.OK, "%s still verifies", ws)
	}
}

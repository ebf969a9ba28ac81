package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

func TestAuditRetentionOverrides(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		got, err := s.AuditRetentionOverrides(ctx)
		require.NoError(t, err)
		require.Empty(t, got, "no override: the deployment's setting applies")

		week := 7 * 24 * time.Hour
		ws, err := s.SetAuditRetention(ctx, store.DefaultWorkspaceID, &week, ev(store.DefaultWorkspaceID, "workspace.updated"))
		require.NoError(t, err)
		require.NotNil(t, ws.AuditRetentionSeconds)
		got, err = s.AuditRetentionOverrides(ctx)
		require.NoError(t, err)
		require.Equal(t, map[string]time.Duration{store.DefaultWorkspaceID: week}, got)
		evs, err := s.ListAudit(ctx, store.DefaultWorkspaceID, "", 10)
		require.NoError(t, err)
		require.Len(t, evs, 1, "audited in the same transaction")

		_, err = s.SetAuditRetention(ctx, store.DefaultWorkspaceID, nil, audit.Event{WorkspaceID: store.DefaultWorkspaceID,
			Type: "workspace.updated", Actor: "t", Outcome: audit.Success})
		require.NoError(t, err)
		got, err = s.AuditRetentionOverrides(ctx)
		require.NoError(t, err)
		require.Empty(t, got, "cleared")

		_, err = s.SetAuditRetention(ctx, "ws_nope", &week)
		require.ErrorIs(t, err, store.ErrNotFound)
		for _, d := range []time.Duration{time.Hour, 20 * 365 * 24 * time.Hour} {
			_, err = s.SetAuditRetention(ctx, store.DefaultWorkspaceID, &d)
			require.ErrorIs(t, err, store.ErrInvalidRetention)
		}
	})
}

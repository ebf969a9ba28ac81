package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

func TestCountConnectionsByStatus(t *testing.T) {
	forEachDialectClock(t, func(t *testing.T, s *store.Store, _ *movableClock) {
		ctx := context.Background()
		ws := store.DefaultWorkspaceID
		got, err := s.CountConnectionsByStatus(ctx)
		require.NoError(t, err)
		require.Empty(t, got)
		lcConn(t, s, ws, "u1")
		lcConn(t, s, ws, "u2")
		c := lcConn(t, s, ws, "u3")
		_, err = s.Disconnect(ctx, ws, c.ID, true, ev(ws, audit.ConnectionDisconnected))
		require.NoError(t, err)
		got, err = s.CountConnectionsByStatus(ctx)
		require.NoError(t, err)
		require.Equal(t, map[string]int64{store.StatusActive: 2, store.StatusDisconnected: 1}, got)
	})
}

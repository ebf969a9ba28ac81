package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// TestDeploymentIDFirstWriterWins: replicas starting at once on one database agree on
// one deployment id, and it never changes afterwards.
func TestDeploymentIDFirstWriterWins(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		_, err := s.DeploymentID(ctx)
		require.ErrorIs(t, err, store.ErrNotFound)
		got := make([]string, 8)
		var wg sync.WaitGroup
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, err := s.EnsureDeploymentID(ctx, ids.New(ids.Deployment))
				require.NoError(t, err)
				got[i] = id
			}()
		}
		wg.Wait()
		for _, id := range got {
			require.Equal(t, got[0], id)
		}
		again, err := s.EnsureDeploymentID(ctx, ids.New(ids.Deployment))
		require.NoError(t, err)
		require.Equal(t, got[0], again)
		read, err := s.DeploymentID(ctx)
		require.NoError(t, err)
		require.Equal(t, got[0], read)
	})
}

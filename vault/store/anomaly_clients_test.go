package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// The client baseline: a key's first clients (its warm-up) are learnt, not reported; after
// it a client it never used is reported once, and again never; the key keeps its most
// recent clients only.
func TestLearnAPIKeyClients(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		ws, key := store.DefaultWorkspaceID, "apk_learn"
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		addr := func(i int) audit.ClientSeen {
			return audit.ClientSeen{Kind: audit.ClientAddress, Hash: fmt.Sprintf("%032x", i)}
		}
		learn := func(at time.Time, seen ...audit.ClientSeen) []audit.ClientSeen {
			fresh, err := s.LearnAPIKeyClients(ctx, ws, key, seen, time.Hour, 4, at)
			require.NoError(t, err)
			return fresh
		}
		require.Empty(t, learn(now, addr(1), addr(2)), "the warm-up learns")
		require.Empty(t, learn(now.Add(30*time.Minute), addr(3)), "still in the warm-up")
		later := now.Add(2 * time.Hour)
		require.Equal(t, []audit.ClientSeen{addr(4)}, learn(later, addr(1), addr(4)), "a new client after the warm-up")
		require.Empty(t, learn(later.Add(time.Minute), addr(4)), "the same client again is known")
		cert := audit.ClientSeen{Kind: audit.ClientCertificate, Hash: fmt.Sprintf("%032x", 99)}
		require.Equal(t, []audit.ClientSeen{cert}, learn(later.Add(2*time.Minute), cert, addr(1)))

		n, err := s.APIKeyClientCount(ctx, ws, key, audit.ClientAddress)
		require.NoError(t, err)
		require.Equal(t, int64(4), n)
		require.Equal(t, []audit.ClientSeen{addr(5)}, learn(later.Add(3*time.Minute), addr(5)))
		n, err = s.APIKeyClientCount(ctx, ws, key, audit.ClientAddress)
		require.NoError(t, err)
		require.Equal(t, int64(4), n, "bounded: the least recently seen goes")
		require.Equal(t, []audit.ClientSeen{addr(2)}, learn(later.Add(4*time.Minute), addr(2)), "addr(2) was the oldest")
		n, err = s.APIKeyClientCount(ctx, ws, key, audit.ClientCertificate)
		require.NoError(t, err)
		require.Equal(t, int64(1), n)

		// Another key has a warm-up of its own.
		fresh, err := s.LearnAPIKeyClients(ctx, ws, "apk_other", []audit.ClientSeen{addr(7)}, time.Hour, 4, later)
		require.NoError(t, err)
		require.Empty(t, fresh)
	})
}

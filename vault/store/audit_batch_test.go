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

// A batch as the token.read writer sends it (COPY on PostgreSQL, multi-row INSERTs on
// SQLite): several workspaces interleaved, more rows than one INSERT statement takes, every
// field set. Every row reads back as written and each workspace's chain verifies.
func TestAppendEventsBatch(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		at := time.Date(2026, 12, 6, 1, 2, 3, 456789000, time.UTC)
		wss := []string{"ws_batch_b", "ws_batch_a", "ws_batch_c"}
		var evs []audit.Event
		for i := range 1500 {
			e := ev(wss[i%len(wss)], audit.TokenRead)
			e.At = at.Add(time.Duration(i) * time.Microsecond)
			e.ConnectionID = fmt.Sprintf("conn_%04d", i)
			if i%7 == 0 {
				e.Outcome, e.ErrorCode, e.Data = audit.Failure, "needs_reauth", `{"note":"ünïcode \"quoted\"\ttab"}`
			}
			evs = append(evs, e)
		}
		require.NoError(t, s.AppendEvents(ctx, evs...))
		for k, ws := range wss {
			got, err := s.ListAudit(ctx, ws, "", 1000)
			require.NoError(t, err)
			require.Len(t, got, 500)
			for j, g := range got {
				want := evs[k+j*len(wss)]
				require.Equal(t, want.ConnectionID, g.ConnectionID, "order within the workspace")
				require.Equal(t, int64(j+1), g.Seq)
				require.True(t, want.At.Equal(g.At), "at: %s vs %s", want.At, g.At)
				require.Equal(t, []string{want.Type, want.Actor, want.Outcome, want.ErrorCode, want.Data},
					[]string{g.Type, g.Actor, g.Outcome, g.ErrorCode, g.Data})
				require.NotEmpty(t, g.ID)
			}
			res, err := s.VerifyAudit(ctx, ws)
			require.NoError(t, err)
			require.True(t, res.OK, "first bad: %s", res.FirstBadEvent)
			require.Equal(t, 500, res.Events)
		}
	})
}

// A batch that cannot be written leaves nothing behind: no row, and the head where it was,
// so the next append links to the last stored event.
func TestAppendEventsBatchIsAtomic(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.AppendEvents(ctx, ev("ws_atomic", audit.TokenRead)))
		first, err := s.ListAudit(ctx, "ws_atomic", "", 10)
		require.NoError(t, err)
		dup := ev("ws_atomic", audit.TokenRead)
		dup.ID = first[0].ID // the second row's primary key collides with a stored one
		err = s.AppendEvents(ctx, ev("ws_atomic", audit.TokenRead), dup, ev("ws_atomic", audit.TokenRead))
		require.ErrorIs(t, err, store.ErrConflict)
		after, err := s.ListAudit(ctx, "ws_atomic", "", 10)
		require.NoError(t, err)
		require.Len(t, after, 1, "nothing of the failed batch is stored")
		require.NoError(t, s.AppendEvents(ctx, ev("ws_atomic", audit.TokenRead)))
		res, err := s.VerifyAudit(ctx, "ws_atomic")
		require.NoError(t, err)
		require.True(t, res.OK)
		require.Equal(t, 2, res.Events)
	})
}

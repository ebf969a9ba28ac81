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

// groupFixture is n OAuth connections whose leases holder "A" holds, claimed at now.
func groupFixture(t *testing.T, s *store.Store, n int, now time.Time) []store.Connection {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, s.EnsureDefaultWorkspace(ctx))
	conns := make([]store.Connection, n)
	for i := range conns {
		conns[i] = oauthConn(t, s, now)
		cl, err := s.ClaimRefresh(ctx, store.ClaimRequest{WorkspaceID: conns[i].WorkspaceID, ConnectionID: conns[i].ID,
			Holder: "A", Now: now, LeaseUntil: now.Add(time.Minute)})
		require.NoError(t, err)
		require.Equal(t, store.ClaimGranted, cl.Outcome)
	}
	return conns
}

func groupCommit(c store.Connection, holder string, version int64, now time.Time) store.RefreshCommit {
	exp := now.Add(time.Hour)
	next := exp.Add(-time.Minute)
	return store.RefreshCommit{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Holder: holder, Version: version,
		AccessToken: []byte("at-" + holder), RefreshToken: []byte("rt-" + holder), ExpiresAt: &exp, NextRefreshAt: &next, Now: now,
		Events: []audit.Event{{WorkspaceID: c.WorkspaceID, Type: audit.TokenRefresh, Actor: "t", ConnectionID: c.ID,
			Outcome: audit.Success, Data: holder}}}
}

// refreshEvents returns the connection ids (with the committing holder) of the default
// workspace's token.refresh events, in chain order.
func refreshEvents(t *testing.T, s *store.Store) []string {
	t.Helper()
	evs, err := s.ListAudit(context.Background(), store.DefaultWorkspaceID, "", 1000)
	require.NoError(t, err)
	var out []string
	for _, e := range evs {
		if e.Type == audit.TokenRefresh {
			out = append(out, e.ConnectionID+"/"+e.Data)
		}
	}
	return out
}

// A group in which one lease was taken over and one credential deleted: those two items
// answer ErrLeaseLost and are left exactly as they were; the others commit, in one
// transaction whose chain append holds exactly their events, and the chain verifies. A
// stale and a current holder of the same connection in one group: only the current
// commits.
func TestCommitRefreshesFencesEachItem(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		conns := groupFixture(t, s, 5, now)
		taken, gone := conns[1], conns[3]
		later := now.Add(2 * time.Minute) // A's leases have expired; B takes one over
		cl, err := s.ClaimRefresh(ctx, store.ClaimRequest{WorkspaceID: taken.WorkspaceID, ConnectionID: taken.ID,
			Holder: "B", Now: later, LeaseUntil: later.Add(time.Minute)})
		require.NoError(t, err)
		require.Equal(t, store.ClaimGranted, cl.Outcome)
		require.NoError(t, s.DB().Where("connection_id = ?", gone.ID).Delete(&store.Credential{}).Error)
		before := refreshEvents(t, s)

		// Not in id order, on purpose: outcomes come back in the caller's order.
		rcs := []store.RefreshCommit{groupCommit(conns[4], "A", 1, later), groupCommit(taken, "A", 1, later),
			groupCommit(conns[0], "A", 1, later), groupCommit(gone, "A", 1, later), groupCommit(conns[2], "A", 1, later)}
		outs, err := s.CommitRefreshes(ctx, rcs)
		require.NoError(t, err)
		require.Len(t, outs, len(rcs))
		for i, o := range outs {
			if rcs[i].ConnectionID == taken.ID || rcs[i].ConnectionID == gone.ID {
				require.ErrorIs(t, o.Err, store.ErrLeaseLost, rcs[i].ConnectionID)
				continue
			}
			require.NoError(t, o.Err)
			require.Equal(t, rcs[i].ConnectionID, o.Conn.ID)
			require.EqualValues(t, 2, o.Conn.Version)
		}
		for _, c := range []store.Connection{conns[0], conns[2], conns[4]} {
			row, err := s.ConnectionWithCredential(ctx, c.WorkspaceID, c.ID)
			require.NoError(t, err)
			require.EqualValues(t, 2, row.Version)
			require.Equal(t, []byte("rt-A"), row.Credential.RefreshToken)
			st, err := s.RefreshStateOf(ctx, c.ID)
			require.NoError(t, err)
			require.Empty(t, st.LeaseHolder, "the commit released the lease")
		}
		row, err := s.ConnectionWithCredential(ctx, taken.WorkspaceID, taken.ID)
		require.NoError(t, err)
		require.EqualValues(t, 1, row.Version, "the taken-over connection is untouched")
		require.Equal(t, []byte("rt-1"), row.Credential.RefreshToken)
		st, err := s.RefreshStateOf(ctx, taken.ID)
		require.NoError(t, err)
		require.Equal(t, "B", st.LeaseHolder, "B's lease stands")
		row, err = s.ConnectionWithCredential(ctx, gone.WorkspaceID, gone.ID)
		require.NoError(t, err)
		require.EqualValues(t, 1, row.Version)
		require.Nil(t, row.Credential)
		st, err = s.RefreshStateOf(ctx, gone.ID)
		require.NoError(t, err)
		require.Equal(t, "A", st.LeaseHolder, "a failed item's lease is left as it was")

		want := append([]string{}, before...)
		for _, i := range []int{0, 2, 4} { // the successful items
			want = append(want, rcs[i].ConnectionID+"/A")
		}
		require.ElementsMatch(t, want, refreshEvents(t, s))
		require.Len(t, refreshEvents(t, s), len(before)+3)
		v, err := s.VerifyAudit(ctx, store.DefaultWorkspaceID)
		require.NoError(t, err)
		require.True(t, v.OK, "chain verifies: %+v", v)

		// The stale holder A and the current holder B of one connection, in one group.
		outs, err = s.CommitRefreshes(ctx, []store.RefreshCommit{groupCommit(taken, "A", 1, later), groupCommit(taken, "B", 1, later)})
		require.NoError(t, err)
		require.ErrorIs(t, outs[0].Err, store.ErrLeaseLost)
		require.NoError(t, outs[1].Err)
		row, err = s.ConnectionWithCredential(ctx, taken.WorkspaceID, taken.ID)
		require.NoError(t, err)
		require.Equal(t, []byte("rt-B"), row.Credential.RefreshToken)
		v, err = s.VerifyAudit(ctx, store.DefaultWorkspaceID)
		require.NoError(t, err)
		require.True(t, v.OK)
		require.Len(t, refreshEvents(t, s), len(before)+4)

		// A group of one (CommitRefresh) answers the fence's error itself.
		_, err = s.CommitRefresh(ctx, groupCommit(conns[0], "A", 1, later))
		require.ErrorIs(t, err, store.ErrLeaseLost)
	})
}

// A hard error (here the chain append, after every item's updates) aborts the whole
// group: no item is written, every outcome carries the error, the chain is unchanged.
func TestCommitRefreshesHardErrorWritesNothing(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		conns := groupFixture(t, s, 3, now)
		before := refreshEvents(t, s)
		rcs := make([]store.RefreshCommit, len(conns))
		for i, c := range conns {
			rcs[i] = groupCommit(c, "A", 1, now)
		}
		rcs[2].Events[0].WorkspaceID = "" // appendEvents refuses an event without workspace
		outs, err := s.CommitRefreshes(ctx, rcs)
		require.Error(t, err)
		require.NotErrorIs(t, err, store.ErrLeaseLost)
		for _, o := range outs {
			require.ErrorIs(t, o.Err, err)
		}
		for _, c := range conns {
			row, err := s.ConnectionWithCredential(ctx, c.WorkspaceID, c.ID)
			require.NoError(t, err)
			require.EqualValues(t, 1, row.Version)
			require.Equal(t, []byte("rt-1"), row.Credential.RefreshToken)
			require.Equal(t, []byte("at-1"), row.Credential.AccessToken)
			st, err := s.RefreshStateOf(ctx, c.ID)
			require.NoError(t, err)
			require.Equal(t, "A", st.LeaseHolder)
		}
		require.Equal(t, before, refreshEvents(t, s))
		v, err := s.VerifyAudit(ctx, store.DefaultWorkspaceID)
		require.NoError(t, err)
		require.True(t, v.OK)

		// The same group without the bad event commits whole.
		rcs[2].Events[0].WorkspaceID = store.DefaultWorkspaceID
		outs, err = s.CommitRefreshes(ctx, rcs)
		require.NoError(t, err)
		for _, o := range outs {
			require.NoError(t, o.Err)
			require.EqualValues(t, 2, o.Conn.Version)
		}
		v, err = s.VerifyAudit(ctx, store.DefaultWorkspaceID)
		require.NoError(t, err)
		require.True(t, v.OK)
		require.Len(t, refreshEvents(t, s), len(before)+3)
	})
}

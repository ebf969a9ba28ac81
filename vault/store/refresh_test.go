package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

func oauthConn(t *testing.T, s *store.Store, next time.Time) store.Connection {
	t.Helper()
	now := time.Now().UTC()
	exp := next.Add(10 * time.Minute)
	c := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: store.DefaultWorkspaceID, Provider: "p", EndUserID: "u",
		AuthMode: "oauth2", Status: store.StatusActive, Scopes: store.Strings{}, ExpiresAt: &exp, NextRefreshAt: &next,
		Version: 1, CreatedAt: now, UpdatedAt: now}
	cred := store.Credential{ConnectionID: c.ID, WorkspaceID: c.WorkspaceID, AccessToken: []byte("at-1"), RefreshToken: []byte("rt-1"), UpdatedAt: now}
	require.NoError(t, s.CreateConnection(context.Background(), c, cred))
	return c
}

func TestRefreshLeaseFencesEveryOutcome(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		now := time.Now().UTC()
		c := oauthConn(t, s, now)
		req := func(holder string, at time.Time) store.ClaimRequest {
			return store.ClaimRequest{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Holder: holder, Now: at, LeaseUntil: at.Add(time.Minute)}
		}

		cl, err := s.ClaimRefresh(ctx, req("A", now))
		require.NoError(t, err)
		require.Equal(t, store.ClaimGranted, cl.Outcome)
		require.Equal(t, []byte("rt-1"), cl.Row.Credential.RefreshToken)

		cl, err = s.ClaimRefresh(ctx, req("B", now.Add(time.Second)))
		require.NoError(t, err)
		require.Equal(t, store.ClaimBusy, cl.Outcome, "A's lease is live")

		// A's lease expires and B takes it over: A's result is thrown away.
		cl, err = s.ClaimRefresh(ctx, req("B", now.Add(2*time.Minute)))
		require.NoError(t, err)
		require.Equal(t, store.ClaimGranted, cl.Outcome)
		commit := func(holder string, version int64, rt string) (store.Connection, error) {
			exp := now.Add(time.Hour)
			next := exp.Add(-time.Minute)
			return s.CommitRefresh(ctx, store.RefreshCommit{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Holder: holder,
				Version: version, AccessToken: []byte("at-" + holder), RefreshToken: []byte(rt), ExpiresAt: &exp,
				NextRefreshAt: &next, Now: now.Add(2 * time.Minute),
				Events: []audit.Event{{WorkspaceID: c.WorkspaceID, Type: audit.TokenRefresh, Actor: "t", ConnectionID: c.ID, Outcome: audit.Success}}})
		}
		_, err = commit("A", 1, "rt-A")
		require.ErrorIs(t, err, store.ErrLeaseLost)
		got, err := commit("B", 1, "rt-B")
		require.NoError(t, err)
		require.EqualValues(t, 2, got.Version)
		row, err := s.ConnectionWithCredential(ctx, c.WorkspaceID, c.ID)
		require.NoError(t, err)
		require.Equal(t, []byte("rt-B"), row.Credential.RefreshToken)
		require.Equal(t, []byte("at-B"), row.Credential.AccessToken)
		st, err := s.RefreshStateOf(ctx, c.ID)
		require.NoError(t, err)
		require.Empty(t, st.LeaseHolder, "the commit released the lease")

		// A commit at a stale version (a reconnect in between) changes nothing.
		cl, err = s.ClaimRefresh(ctx, req("C", now.Add(3*time.Minute)))
		require.NoError(t, err)
		require.Equal(t, store.ClaimGranted, cl.Outcome)
		_, err = commit("C", 1, "rt-C")
		require.ErrorIs(t, err, store.ErrLeaseLost)

		// Keep the old refresh token when the provider sent none.
		exp := now.Add(time.Hour)
		_, err = s.CommitRefresh(ctx, store.RefreshCommit{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Holder: "C", Version: 2,
			AccessToken: []byte("at-C"), ExpiresAt: &exp, Now: now})
		require.NoError(t, err)
		row, err = s.ConnectionWithCredential(ctx, c.WorkspaceID, c.ID)
		require.NoError(t, err)
		require.Equal(t, []byte("rt-B"), row.Credential.RefreshToken)

		// Fresh: the Needed check under the lock says no.
		r := req("D", now.Add(4*time.Minute))
		r.Needed = func(store.Connection) bool { return false }
		cl, err = s.ClaimRefresh(ctx, r)
		require.NoError(t, err)
		require.Equal(t, store.ClaimFresh, cl.Outcome)

		// A transient failure backs off; a forced claim ignores it, a 429 it does not.
		cl, err = s.ClaimRefresh(ctx, req("E", now))
		require.NoError(t, err)
		require.Equal(t, store.ClaimGranted, cl.Outcome)
		until := now.Add(time.Hour)
		_, n, err := s.FailRefresh(ctx, store.RefreshFailure{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Holder: "E",
			Version: cl.Row.Version, ErrorCode: "provider_unavailable", BackoffUntil: &until, NextRefreshAt: &until, Now: now})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		cl, err = s.ClaimRefresh(ctx, req("F", now.Add(time.Second)))
		require.NoError(t, err)
		require.Equal(t, store.ClaimCooldown, cl.Outcome)
		forced := req("F", now.Add(time.Second))
		forced.Force = true
		cl, err = s.ClaimRefresh(ctx, forced)
		require.NoError(t, err)
		require.Equal(t, store.ClaimGranted, cl.Outcome)

		// invalid_grant: needs_reauth, unscheduled, version moved, no more claims.
		c2, _, err := s.FailRefresh(ctx, store.RefreshFailure{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Holder: "F",
			Version: cl.Row.Version, Status: store.StatusNeedsReauth, ErrorCode: "invalid_grant", Now: now,
			Events: []audit.Event{{WorkspaceID: c.WorkspaceID, Type: audit.TokenRefresh, Actor: "t", ConnectionID: c.ID,
				Outcome: audit.Failure, ErrorCode: "invalid_grant"}}})
		require.NoError(t, err)
		require.Equal(t, store.StatusNeedsReauth, c2.Status)
		require.Nil(t, c2.NextRefreshAt)
		cl, err = s.ClaimRefresh(ctx, forced)
		require.NoError(t, err)
		require.Equal(t, store.ClaimInactive, cl.Outcome)
		evs, err := s.ListAudit(ctx, c.WorkspaceID, "", 100)
		require.NoError(t, err)
		require.Equal(t, "invalid_grant", evs[len(evs)-1].ErrorCode)
	})
}

func TestClaimDueSharesWorkAndSkipsLeased(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		now := time.Now().UTC()
		due := map[string]bool{}
		for i := range 30 {
			due[oauthConn(t, s, now.Add(-time.Duration(i)*time.Second)).ID] = true
		}
		oauthConn(t, s, now.Add(time.Hour)) // not due
		n, err := s.CountDue(ctx, now)
		require.NoError(t, err)
		require.EqualValues(t, 30, n)

		// Three sweepers at once: every due connection is claimed exactly once.
		var mu sync.Mutex
		claimed := map[string]int{}
		var wg sync.WaitGroup
		for _, h := range []string{"A", "B", "C"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					batch, err := s.ClaimDue(ctx, h, now, now, now.Add(time.Minute), 4)
					if err != nil {
						t.Error(err)
						return
					}
					if len(batch) == 0 {
						return
					}
					mu.Lock()
					for _, cc := range batch {
						claimed[cc.ID]++
						require.NotNil(t, cc.Credential)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		require.Len(t, claimed, 30)
		for id, k := range claimed {
			require.True(t, due[id])
			require.Equal(t, 1, k, id)
		}
		// After the leases expire they can be claimed again.
		batch, err := s.ClaimDue(ctx, "D", now.Add(2*time.Minute), now.Add(2*time.Minute), now.Add(3*time.Minute), 100)
		require.NoError(t, err)
		require.Len(t, batch, 30)
	})
}

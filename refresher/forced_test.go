package refresher_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// TestForcedRefreshThrottled: two replicas on one database, a counting provider. Forced
// refreshes (ForceRefresh after a provider's 401, Refresh for POST .../refresh) reach the
// provider at most once per connection per interval (the default, 30s) whichever replica
// is asked; callers inside the interval get the last refresh's token.
func TestForcedRefreshThrottled(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		ctx := context.Background()
		e := newEnv(t, dialect.Dialect())
		srv := newFosite(t, time.Hour)
		e.setProvider(fositeProvider(t, srv), oauthflow.ClientCredentials{ClientID: srv.ClientID()})
		e.provs.cc.ClientSecret = secretOf(srv.ClientSecret())
		tok := grant(t, srv)
		c := e.addConn(tok.AccessToken, tok.RefreshToken, tok.Expiry)

		var offset atomic.Int64 // the replicas' shared clock runs ahead of the wall clock by this
		now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		advance := func(d time.Duration) { offset.Add(int64(d)) }
		r1 := e.refresher(refresher.Config{}, refresher.WithClock(now))
		r2 := e.refresher(refresher.Config{}, refresher.WithClock(now))
		base := srv.TokenCalls()

		first, err := r1.ForceRefresh(ctx, c.WorkspaceID, c.ID)
		require.NoError(t, err)
		require.NotEqual(t, tok.AccessToken, first.Reveal())
		require.Equal(t, base+1, srv.TokenCalls())

		// Inside the interval, on either replica, sequentially and all at once: the same token.
		got, err := r2.ForceRefresh(ctx, c.WorkspaceID, c.ID)
		require.NoError(t, err)
		require.Equal(t, first.Reveal(), got.Reveal())
		conn, err := r2.Refresh(ctx, c.WorkspaceID, c.ID)
		require.NoError(t, err)
		require.Equal(t, store.StatusActive, conn.Status)
		advance(20 * time.Second)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := []*refresher.Refresher{r1, r2}[i%2].ForceRefresh(ctx, c.WorkspaceID, c.ID)
				require.NoError(t, err)
				require.Equal(t, first.Reveal(), got.Reveal())
			}()
		}
		wg.Wait()
		require.Equal(t, base+1, srv.TokenCalls(), "no provider call inside the interval")

		// Once it has passed, one forced refresh again, shared by concurrent callers.
		advance(11 * time.Second)
		tokens := make([]string, 8)
		for i := range tokens {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := []*refresher.Refresher{r1, r2}[i%2].ForceRefresh(ctx, c.WorkspaceID, c.ID)
				require.NoError(t, err)
				tokens[i] = got.Reveal()
			}()
		}
		wg.Wait()
		require.Equal(t, base+2, srv.TokenCalls())
		require.NotEqual(t, first.Reveal(), tokens[0])
		for _, tk := range tokens {
			require.Equal(t, tokens[0], tk)
		}
		require.True(t, srv.Active(ctx, tokens[0]))
	})
}

// TestForcedRefreshThrottledAfterFailure: a forced refresh that failed stands for the
// interval on every replica (503 without a provider call); after it, a forced refresh
// skips a 5xx's backoff again.
func TestForcedRefreshThrottledAfterFailure(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		ctx := context.Background()
		e := newEnv(t, dialect.Dialect())
		fp := newFakeProvider(t)
		fp.mode.Store("500")
		e.setProvider(oauthflow.Provider{TokenURL: fp.URL + "/token"}, oauthflow.ClientCredentials{ClientID: "c"})
		var offset atomic.Int64
		now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		cfg := refresher.Config{ForcedInterval: 10 * time.Second, BackoffBase: time.Hour, BackoffMax: time.Hour}
		r1 := e.refresher(cfg, refresher.WithClock(now))
		r2 := e.refresher(cfg, refresher.WithClock(now))
		c := e.addConn("current", "rt", time.Now().Add(time.Hour))

		_, err := r1.Refresh(ctx, c.WorkspaceID, c.ID)
		require.ErrorIs(t, err, refresher.ErrUnavailable)
		require.EqualValues(t, 1, fp.calls.Load())
		for _, r := range []*refresher.Refresher{r1, r2} {
			_, err = r.Refresh(ctx, c.WorkspaceID, c.ID)
			require.ErrorIs(t, err, refresher.ErrUnavailable)
			tok, err := r.ForceRefresh(ctx, c.WorkspaceID, c.ID)
			require.NoError(t, err, "the current token is served while valid")
			require.Equal(t, "current", tok.Reveal())
		}
		require.EqualValues(t, 1, fp.calls.Load(), "no provider call inside the interval")

		offset.Add(int64(11 * time.Second))
		fp.mode.Store("ok")
		conn, err := r2.Refresh(ctx, c.WorkspaceID, c.ID)
		require.NoError(t, err)
		require.NotNil(t, conn.LastRefreshedAt)
		require.EqualValues(t, 2, fp.calls.Load())
	})
}

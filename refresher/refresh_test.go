package refresher_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

func countAudit(t *testing.T, s *store.Store, typ, outcome string) int {
	t.Helper()
	evs, err := s.ListAudit(context.Background(), store.DefaultWorkspaceID, "", 1000)
	require.NoError(t, err)
	n := 0
	for _, e := range evs {
		if e.Type == typ && e.Outcome == outcome {
			n++
		}
	}
	return n
}

// Two refreshers (two replicas) on one database, each hammered by concurrent requests whose
// min_validity forces a refresh every time it is allowed: the rotating, reuse-detecting
// provider never sees a refresh token twice (no invalid_grant, no needs_reauth), every
// provider call is committed, and every token handed out was valid at the provider.
func TestConcurrentRefreshesAcrossReplicasRotateExactlyOnce(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		e := newEnv(t, dialect.Dialect())
		srv := newFosite(t, time.Hour)
		e.setProvider(fositeProvider(t, srv), oauthflow.ClientCredentials{ClientID: srv.ClientID()})
		e.provs.cc.ClientSecret = secretOf(srv.ClientSecret())
		var conns []store.Connection
		for range 3 {
			tok := grant(t, srv)
			conns = append(conns, e.addConn(tok.AccessToken, tok.RefreshToken, tok.Expiry))
		}
		base := srv.TokenCalls()
		cfg := refresher.Config{MinInterval: 40 * time.Millisecond, WaitBusy: 20 * time.Second}
		replicas := []*refresher.Refresher{e.refresher(cfg), e.refresher(cfg)}

		var served, superseded, invalid atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		stop := time.Now().Add(1500 * time.Millisecond)
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := replicas[i%2]
				for n := 0; time.Now().Before(stop); n++ {
					c := conns[(i+n)%len(conns)]
					tok, err := e.tokens(r).Credential(context.Background(), c.WorkspaceID, c.ID, time.Hour+time.Minute)
					if err != nil {
						errs <- err
						return
					}
					served.Add(1)
					if srv.Active(context.Background(), tok.Secret.Reveal()) {
						continue
					}
					// Only a token a later refresh has replaced may be inactive. That refresh
					// may be in flight (the provider already rotated, the commit not yet
					// made): give it a moment to commit before calling the token invalid.
					if supersededWithin(e, c.ID, tok.Conn.Version, 2*time.Second) {
						superseded.Add(1)
					} else {
						invalid.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Zero(t, invalid.Load(), "a token handed out was not valid at the provider")
		for _, c := range conns {
			row := e.row(c.ID)
			require.Equal(t, store.StatusActive, row.Status)
			require.True(t, srv.Active(context.Background(), e.open(row, vault.AccessTokenBinding)))
		}
		calls := srv.TokenCalls() - base
		require.Greater(t, calls, int64(len(conns)), "min_validity forced refreshes")
		require.Equal(t, int(calls), countAudit(t, e.store, audit.TokenRefresh, audit.Success),
			"every provider call was committed exactly once")
		require.Zero(t, countAudit(t, e.store, audit.TokenRefresh, audit.Failure), "no invalid_grant, no failure")
		t.Logf("%s: %d tokens served, %d refreshes, %d superseded while in flight", dialect.Dialect(), served.Load(), calls, superseded.Load())
	})
}

// The sweep refreshes every due connection exactly once even with two replicas sweeping
// at the same moment, and reschedules each to its new expiry minus lead and jitter.
func TestSweepRefreshesEachDueConnectionOnce(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		e := newEnv(t, dialect.Dialect())
		srv := newFosite(t, time.Hour)
		e.setProvider(fositeProvider(t, srv), oauthflow.ClientCredentials{ClientID: srv.ClientID(), ClientSecret: secretOf(srv.ClientSecret())})
		var conns []store.Connection
		for range 10 {
			tok := grant(t, srv)
			conns = append(conns, e.addConn(tok.AccessToken, tok.RefreshToken, time.Now().Add(time.Minute))) // inside the lead
		}
		notDue := e.addConn("at", "rt", time.Now().Add(time.Hour))
		base := srv.TokenCalls()
		cfg := refresher.Config{Workers: 3, Batch: 2, PerProvider: 2}
		a, b := e.refresher(cfg), e.refresher(cfg)
		var wg sync.WaitGroup
		stats := make([]refresher.SweepStats, 2)
		for i, r := range []*refresher.Refresher{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := r.Sweep(context.Background())
				require.NoError(t, err)
				stats[i] = st
			}()
		}
		wg.Wait()
		require.EqualValues(t, len(conns), srv.TokenCalls()-base)
		require.EqualValues(t, len(conns), stats[0].Refreshed+stats[1].Refreshed)
		for _, c := range conns {
			row := e.row(c.ID)
			require.Equal(t, store.StatusActive, row.Status)
			require.True(t, row.NextRefreshAt.After(time.Now().Add(40*time.Minute)), "rescheduled near the new expiry")
			require.False(t, a.NeedsRefresh(row.Connection, 0))
			st, err := e.store.RefreshStateOf(context.Background(), c.ID)
			require.NoError(t, err)
			require.Empty(t, st.LeaseHolder)
		}
		require.Equal(t, 1, int(e.row(notDue.ID).Version), "a connection that is not due is left alone")
		n, err := a.DueCount(context.Background())
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// fakeProvider answers the refresh_token grant as mode says.
type fakeProvider struct {
	*httptest.Server
	mode  atomic.Value // string
	calls atomic.Int64
}

func newFakeProvider(t *testing.T) *fakeProvider {
	f := &fakeProvider{}
	f.mode.Store("ok")
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch f.mode.Load().(string) {
		case "429":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":"slow_down"}`))
		case "500":
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`<html>oops</html>`))
		case "slow":
			time.Sleep(700 * time.Millisecond)
			_, _ = fmt.Fprintf(w, `{"access_token":"slow-%d","token_type":"bearer","expires_in":3600}`, n)
		case "invalid_grant":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"refresh token rt-SENTINEL was revoked"}`))
		case "no_expiry_no_rotation":
			_, _ = fmt.Fprintf(w, `{"access_token":"plain-%d","token_type":"bearer"}`, n)
		default:
			_, _ = fmt.Fprintf(w, `{"access_token":"new-%d","refresh_token":"rt-%d","token_type":"bearer","expires_in":3600}`, n, n)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func TestProviderFailureClasses(t *testing.T) {
	e := newEnv(t, store.SQLite)
	oc, err := outbound.New(outbound.Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Timeouts: outbound.Timeouts{Overall: 300 * time.Millisecond}})
	require.NoError(t, err)
	e.hc = oc.TokenClient()
	fp := newFakeProvider(t)
	e.setProvider(oauthflow.Provider{TokenURL: fp.URL + "/token", AssumedExpiresIn: 7200}, oauthflow.ClientCredentials{ClientID: "c"})
	// Forced refreshes are not throttled here (ForcedInterval: a nanosecond; a millisecond
	// was flaky, a forced refresh can follow the failure within it): this test is
	// about how each failure class meets a forced refresh (forced_test.go is the throttle).
	r := e.refresher(refresher.Config{BackoffBase: time.Minute, ForcedInterval: time.Nanosecond})
	ctx := context.Background()
	soon := time.Now().Add(5 * time.Minute) // inside the lead window, still valid

	t.Run("429 honours Retry-After and serves the current token", func(t *testing.T) {
		fp.mode.Store("429")
		c := e.addConn("current", "rt", soon)
		before := fp.calls.Load()
		tok, err := e.tokens(r).Credential(ctx, c.WorkspaceID, c.ID, 0)
		require.NoError(t, err)
		require.Equal(t, "current", tok.Secret.Reveal())
		st, err := e.store.RefreshStateOf(ctx, c.ID)
		require.NoError(t, err)
		require.True(t, st.RateLimited)
		require.Equal(t, "rate_limited", st.LastError)
		require.WithinDuration(t, time.Now().Add(2*time.Minute), *st.BackoffUntil, 30*time.Second)
		_, err = r.Refresh(ctx, c.WorkspaceID, c.ID)
		require.ErrorIs(t, err, refresher.ErrUnavailable, "even a forced refresh waits out Retry-After")
		require.Equal(t, before+1, fp.calls.Load())
		require.Equal(t, store.StatusActive, e.row(c.ID).Status)
	})
	t.Run("500 backs off; expired token is unavailable, connection stays active", func(t *testing.T) {
		fp.mode.Store("500")
		c := e.addConn("expired", "rt", time.Now().Add(-time.Second))
		before := fp.calls.Load()
		_, err := e.tokens(r).Credential(ctx, c.WorkspaceID, c.ID, 0)
		require.ErrorIs(t, err, refresher.ErrUnavailable)
		_, err = e.tokens(r).Credential(ctx, c.WorkspaceID, c.ID, 0)
		require.ErrorIs(t, err, refresher.ErrUnavailable)
		require.Equal(t, before+1, fp.calls.Load(), "the cooldown spares the provider")
		st, err := e.store.RefreshStateOf(ctx, c.ID)
		require.NoError(t, err)
		require.Equal(t, 1, st.Failures)
		require.Equal(t, "provider_unavailable", st.LastError)
		row := e.row(c.ID)
		require.Equal(t, store.StatusActive, row.Status)
		require.True(t, row.NextRefreshAt.After(time.Now().Add(r.Lead())), "rescheduled after the backoff")
		_, err = r.Refresh(ctx, c.WorkspaceID, c.ID)
		require.ErrorIs(t, err, refresher.ErrUnavailable)
		require.Equal(t, before+2, fp.calls.Load(), "a forced refresh skips the backoff of a 5xx")
	})
	t.Run("slow provider times out as transient", func(t *testing.T) {
		fp.mode.Store("slow")
		c := e.addConn("current", "rt", soon)
		tok, err := e.tokens(r).Credential(ctx, c.WorkspaceID, c.ID, 0)
		require.NoError(t, err)
		require.Equal(t, "current", tok.Secret.Reveal())
		st, err := e.store.RefreshStateOf(ctx, c.ID)
		require.NoError(t, err)
		require.Equal(t, "timeout", st.LastError)
	})
	t.Run("no expires_in gets the assumed lifetime; no refresh token keeps the old", func(t *testing.T) {
		fp.mode.Store("no_expiry_no_rotation")
		c := e.addConn("current", "rt-keep", soon)
		tok, err := e.tokens(r).Credential(ctx, c.WorkspaceID, c.ID, 0)
		require.NoError(t, err)
		require.Contains(t, tok.Secret.Reveal(), "plain-")
		row := e.row(c.ID)
		require.WithinDuration(t, time.Now().Add(2*time.Hour), *row.ExpiresAt, time.Minute)
		require.Equal(t, "rt-keep", e.open(row, vault.RefreshTokenBinding))
		require.Equal(t, tok.Secret.Reveal(), e.open(row, vault.AccessTokenBinding))
	})
	t.Run("invalid_grant: needs_reauth once, audited, no more attempts", func(t *testing.T) {
		fp.mode.Store("invalid_grant")
		c := e.addConn("current", "rt", soon)
		before := fp.calls.Load()
		_, err := e.tokens(r).Credential(ctx, c.WorkspaceID, c.ID, 0)
		require.ErrorIs(t, err, refresher.ErrNeedsReauth)
		require.NotContains(t, err.Error(), "SENTINEL")
		row := e.row(c.ID)
		require.Equal(t, store.StatusNeedsReauth, row.Status)
		require.Nil(t, row.NextRefreshAt)
		_, err = e.tokens(r).Credential(ctx, c.WorkspaceID, c.ID, 0)
		require.ErrorIs(t, err, refresher.ErrNeedsReauth)
		_, err = r.Refresh(ctx, c.WorkspaceID, c.ID)
		require.ErrorIs(t, err, refresher.ErrNeedsReauth)
		require.Equal(t, before+1, fp.calls.Load())
		evs, err := e.store.ListAudit(ctx, store.DefaultWorkspaceID, "", 1000)
		require.NoError(t, err)
		last := evs[len(evs)-1]
		require.Equal(t, audit.TokenRefresh, last.Type)
		require.Equal(t, "invalid_grant", last.ErrorCode)
		require.NotContains(t, last.Data, "SENTINEL")
	})
	t.Run("ok rotates", func(t *testing.T) {
		fp.mode.Store("ok")
		c := e.addConn("current", "rt-old", soon)
		tok, err := e.tokens(r).Credential(ctx, c.WorkspaceID, c.ID, 0)
		require.NoError(t, err)
		require.Contains(t, tok.Secret.Reveal(), "new-")
		row := e.row(c.ID)
		require.NotEqual(t, "rt-old", e.open(row, vault.RefreshTokenBinding))
		// Valid and outside the lead window: served without a provider call.
		before := fp.calls.Load()
		require.False(t, r.NeedsRefresh(row.Connection, 0))
		require.True(t, r.NeedsRefresh(row.Connection, 2*time.Hour), "min_validity beyond the expiry")
		require.Equal(t, before, fp.calls.Load())
	})
}

// supersededWithin reports whether the connection's version passes version within d.
func supersededWithin(e *env, id string, version int64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if e.row(id).Version > version {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package refresher_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// groupCountingStore is the real store, its CommitRefreshes counted and slowed down so that
// commits pile up behind a transaction in flight. The first group of several has one
// member's lease stolen (another holder, as if it had taken over an expired lease) just
// before it commits.
type groupCountingStore struct {
	*store.Store
	delay time.Duration

	mu      sync.Mutex
	txs     int
	items   int
	largest int
	stolen  string
}

func (g *groupCountingStore) CommitRefreshes(ctx context.Context, rcs []store.RefreshCommit) ([]store.CommitOutcome, error) {
	g.mu.Lock()
	g.txs++
	g.items += len(rcs)
	g.largest = max(g.largest, len(rcs))
	steal := g.stolen == "" && len(rcs) > 1
	if steal {
		g.stolen = rcs[1].ConnectionID
	}
	g.mu.Unlock()
	if steal {
		if err := g.DB().Exec(`UPDATE refresh_state SET lease_holder = 'thief' WHERE connection_id = ?`, rcs[1].ConnectionID).Error; err != nil {
			return nil, err
		}
	}
	time.Sleep(g.delay)
	return g.Store.CommitRefreshes(ctx, rcs)
}

// A sweep whose workers finish together commits their results in groups: fewer
// transactions than refreshes, every refresh committed exactly once with its audit event,
// and the one member whose lease was lost thrown away alone, its connection untouched.
func TestSweepCommitsInGroups(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		e := newEnv(t, dialect.Dialect())
		fp := newFakeProvider(t)
		e.setProvider(oauthflow.Provider{TokenURL: fp.URL + "/token"}, oauthflow.ClientCredentials{ClientID: "c"})
		const n = 48
		conns := make([]store.Connection, n)
		for i := range conns {
			conns[i] = e.addConn("at", "rt", time.Now().Add(time.Minute)) // due
		}
		gs := &groupCountingStore{Store: e.store, delay: 30 * time.Millisecond}
		var outcomes sync.Map
		var successes atomic.Int64
		r, err := refresher.New(refresher.Config{Workers: 16, PerProvider: 16},
			refresher.Deps{Store: gs, Creds: e.creds, Providers: e.provs, HTTPClient: e.hc},
			refresher.WithMetrics(metricsFunc(func(_, outcome string) {
				v, _ := outcomes.LoadOrStore(outcome, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
				if outcome == "success" {
					successes.Add(1)
				}
			})))
		require.NoError(t, err)

		st, err := r.Sweep(context.Background())
		require.NoError(t, err)
		require.EqualValues(t, n-1, st.Refreshed)
		require.EqualValues(t, 1, st.Discarded, "the member whose lease was lost")
		require.Zero(t, st.Failed)
		require.EqualValues(t, n-1, successes.Load())
		t.Logf("%s: %d refresh commits in %d transactions, largest group %d", dialect.Dialect(), gs.items, gs.txs, gs.largest)
		require.Equal(t, n, gs.items)
		require.Less(t, gs.txs, n-n/4, "commits were grouped (at least a quarter of the transactions saved, also on a loaded machine)")
		require.Greater(t, gs.largest, 1)

		for _, c := range conns {
			row := e.row(c.ID)
			if c.ID == gs.stolen {
				require.EqualValues(t, 1, row.Version, "a lost lease's result is thrown away")
				require.Equal(t, "rt", e.open(row, vault.RefreshTokenBinding))
				continue
			}
			require.EqualValues(t, 2, row.Version)
			require.NotEqual(t, "rt", e.open(row, vault.RefreshTokenBinding), "the rotated refresh token is stored")
			state, err := e.store.RefreshStateOf(context.Background(), c.ID)
			require.NoError(t, err)
			require.Empty(t, state.LeaseHolder)
		}
		require.Equal(t, n-1, countAudit(t, e.store, audit.TokenRefresh, audit.Success))
		v, err := e.store.VerifyAudit(context.Background(), store.DefaultWorkspaceID)
		require.NoError(t, err)
		require.True(t, v.OK)
	})
}

// A lone on-demand refresh commits alone, in a group of one, before its token is served.
func TestLoneCommitIsAGroupOfOne(t *testing.T) {
	e := newEnv(t, store.SQLite)
	fp := newFakeProvider(t)
	e.setProvider(oauthflow.Provider{TokenURL: fp.URL + "/token"}, oauthflow.ClientCredentials{ClientID: "c"})
	c := e.addConn("at", "rt", time.Now().Add(time.Minute))
	gs := &groupCountingStore{Store: e.store}
	r, err := refresher.New(refresher.Config{}, refresher.Deps{Store: gs, Creds: e.creds, Providers: e.provs, HTTPClient: e.hc})
	require.NoError(t, err)
	tok, err := e.tokens(r).Credential(context.Background(), c.WorkspaceID, c.ID, 0)
	require.NoError(t, err)
	require.Equal(t, tok.Secret.Reveal(), e.open(e.row(c.ID), vault.AccessTokenBinding), "committed before it is handed out")
	require.Equal(t, 1, gs.txs)
}

type metricsFunc func(provider, outcome string)

func (f metricsFunc) Refresh(provider, outcome string) { f(provider, outcome) }
func (metricsFunc) SweepCompleted(time.Time)           {}

package refresher_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// downAtCommit is the real store whose commits fail as an unreachable database does for
// a while after the first one is tried: the provider has answered, the database is gone.
type downAtCommit struct {
	*store.Store
	downFor time.Duration
	since   atomic.Int64 // unix nanos of the first commit attempt
	tries   atomic.Int64
}

func (d *downAtCommit) CommitRefreshes(ctx context.Context, rcs []store.RefreshCommit) ([]store.CommitOutcome, error) {
	d.tries.Add(1)
	d.since.CompareAndSwap(0, time.Now().UnixNano())
	if time.Since(time.Unix(0, d.since.Load())) < d.downFor {
		return nil, store.ErrUnavailable
	}
	return d.Store.CommitRefreshes(ctx, rcs)
}

// A rotating provider's answer that meets a database down for longer than a few retries
// (3 s here) is held and committed once it is back: the stored refresh token is the new,
// live one, not the retired one (which would make the next refresh invalid_grant).
func TestRefreshOutlivesADatabaseOutageAtCommit(t *testing.T) {
	e := newEnv(t, store.SQLite)
	srv := newFosite(t, time.Hour)
	e.setProvider(fositeProvider(t, srv), oauthflow.ClientCredentials{ClientID: srv.ClientID()})
	e.provs.cc.ClientSecret = secretOf(srv.ClientSecret())
	tok := grant(t, srv)
	c := e.addConn(tok.AccessToken, tok.RefreshToken, tok.Expiry)

	down := &downAtCommit{Store: e.store, downFor: 3 * time.Second}
	r, err := refresher.New(refresher.Config{}, refresher.Deps{Store: down, Creds: e.creds, Providers: e.provs, HTTPClient: e.hc})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fresh, err := r.ForceRefresh(ctx, c.WorkspaceID, c.ID)
	require.NoError(t, err)
	require.Greater(t, down.tries.Load(), int64(5), "more than the old five attempts")
	require.False(t, srv.RefreshActive(ctx, tok.RefreshToken), "the provider rotated")

	row := e.row(c.ID)
	require.Equal(t, store.StatusActive, row.Status)
	require.Equal(t, fresh.Reveal(), e.open(row, vault.AccessTokenBinding))
	require.True(t, srv.RefreshActive(ctx, e.open(row, vault.RefreshTokenBinding)), "the stored refresh token is the live one")
}

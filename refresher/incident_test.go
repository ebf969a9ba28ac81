package refresher_test

import (
	"context"
	"errors"
	"slices"
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

// readBy records that key read each connection (an aggregated token.read event each).
func readBy(t *testing.T, e *env, key string, at time.Time, conns ...string) {
	t.Helper()
	evs := make([]audit.Event, 0, len(conns))
	for _, id := range conns {
		evs = append(evs, audit.Event{WorkspaceID: store.DefaultWorkspaceID, At: at, Type: audit.TokenRead, Actor: key,
			ConnectionID: id, Outcome: audit.Success,
			Data: `{"count":3,"first_at":"` + at.UTC().Format(time.RFC3339) + `","last_at":"` + at.UTC().Format(time.RFC3339) + `"}`})
	}
	require.NoError(t, e.store.AppendEvents(context.Background(), evs...))
}

// A leaked key read N connections: the incident rotation replaces and revokes every token
// it was served — each old access token inactive at the provider (introspection), each
// connection serving a fresh one, one connection.rotated event each — and a crash in the
// middle, then a re-run with the incident id, refreshes nothing twice.
func TestIncidentRotate(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		ctx := context.Background()
		e := newEnv(t, dialect.Dialect())
		srv := newFosite(t, time.Hour)
		p := fositeProvider(t, srv)
		p.RevocationURL = srv.RevocationURL()
		e.setProvider(p, oauthflow.ClientCredentials{ClientID: srv.ClientID(), ClientSecret: secretOf(srv.ClientSecret())})
		now := time.Now()
		var conns, old []string
		for range incidentConns {
			tok := grant(t, srv)
			conns = append(conns, e.addConn(tok.AccessToken, tok.RefreshToken, tok.Expiry).ID)
			old = append(old, tok.AccessToken)
		}
		other := grant(t, srv)
		untouched := e.addConn(other.AccessToken, other.RefreshToken, other.Expiry).ID
		readBy(t, e, "apk_leaked", now.Add(-time.Hour), conns...)
		readBy(t, e, "apk_leaked", now.Add(-72*time.Hour), untouched) // outside the window
		readBy(t, e, "apk_other", now.Add(-time.Minute), untouched)

		r := e.refresher(refresher.Config{})
		v, err := refresher.NewRevocations(r, e.store, time.Hour)
		require.NoError(t, err)
		in, err := refresher.NewIncidents(r, v, e.store)
		require.NoError(t, err)
		req := refresher.IncidentRequest{WorkspaceID: store.DefaultWorkspaceID, APIKeyID: "apk_leaked", Since: 24 * time.Hour,
			Actor: "test"}

		calls := srv.TokenCalls()
		dry := req
		dry.DryRun = true
		res, err := in.Rotate(ctx, dry)
		require.NoError(t, err)
		require.Equal(t, refresher.IncidentResult{DryRun: true, Connections: incidentConns, Revoked: incidentConns,
			Refreshed: incidentConns, NotRevocable: []string{}, Failed: []string{}}, res)
		require.Equal(t, calls, srv.TokenCalls(), "a dry run asks no provider")
		require.True(t, srv.Active(ctx, old[0]))

		// A crash after the refresh of the connection in the middle, before it is recorded.
		sorted := slices.Sorted(slices.Values(conns)) // the rotation goes in id order
		crashAt := sorted[incidentConns/2]
		refresher.SetIncidentHook(in, func(stage, id string) error {
			if stage == "refreshed" && id == crashAt {
				return errors.New("crash")
			}
			return nil
		})
		var seen int
		req.Progress = func(done, total int) { seen = done; require.Equal(t, incidentConns, total) }
		res, err = in.Rotate(ctx, req)
		require.Error(t, err)
		require.NotEmpty(t, res.IncidentID)
		require.Equal(t, incidentConns/2, seen)
		refresher.SetIncidentHook(in, nil)

		resumed, err := in.Rotate(ctx, refresher.IncidentRequest{WorkspaceID: store.DefaultWorkspaceID,
			IncidentID: res.IncidentID, Actor: "test"})
		require.NoError(t, err)
		require.Equal(t, refresher.IncidentResult{IncidentID: res.IncidentID, Connections: incidentConns,
			Revoked: incidentConns, Refreshed: incidentConns, NotRevocable: []string{}, Failed: []string{}}, resumed)
		require.Equal(t, calls+int64(incidentConns), srv.TokenCalls(), "each connection refreshed exactly once")

		tokens := e.tokens(r)
		for i, id := range conns {
			require.False(t, srv.Active(ctx, old[i]), "the exposed token is inactive at the provider")
			cred, err := tokens.Credential(ctx, store.DefaultWorkspaceID, id, 0)
			require.NoError(t, err)
			require.NotEqual(t, old[i], cred.Secret.Reveal())
			require.True(t, srv.Active(ctx, cred.Secret.Reveal()), "the connection serves a live token")
		}
		require.True(t, srv.Active(ctx, other.AccessToken), "a connection the key did not read in the window is untouched")
		require.Equal(t, other.AccessToken, e.open(e.row(untouched), vault.AccessTokenBinding))

		evs, err := e.store.ListAudit(ctx, store.DefaultWorkspaceID, "", 100_000)
		require.NoError(t, err)
		rotated := map[string]int{}
		for _, ev := range evs {
			if ev.Type == audit.ConnectionRotated {
				require.Equal(t, audit.Success, ev.Outcome, ev.Data)
				rotated[ev.ConnectionID]++
			}
		}
		require.Len(t, rotated, incidentConns)
		for _, id := range conns {
			require.Equal(t, 1, rotated[id], "one event per connection")
		}

		// Run again: everything is done, nothing is rotated.
		again, err := in.Rotate(ctx, refresher.IncidentRequest{WorkspaceID: store.DefaultWorkspaceID, IncidentID: res.IncidentID})
		require.NoError(t, err)
		require.Equal(t, resumed, again)
		require.Equal(t, calls+int64(incidentConns), srv.TokenCalls())
	})
}

func TestIncidentRequestChecked(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.setProvider(oauthflow.Provider{TokenURL: "https://auth.example.com/token"}, oauthflow.ClientCredentials{ClientID: "c"})
	r := e.refresher(refresher.Config{})
	v, err := refresher.NewRevocations(r, e.store, time.Hour)
	require.NoError(t, err)
	in, err := refresher.NewIncidents(r, v, e.store)
	require.NoError(t, err)
	for _, req := range []refresher.IncidentRequest{
		{}, {APIKeyID: "apk_x", Provider: "p"}, {IncidentID: "inc_x", Provider: "p"},
		{APIKeyID: "apk_x", Since: time.Second}, {APIKeyID: "apk_x", Since: 10000 * time.Hour},
	} {
		req.WorkspaceID = store.DefaultWorkspaceID
		_, err := in.Rotate(context.Background(), req)
		require.Error(t, err, "%+v", req)
	}
	_, err = in.Rotate(context.Background(), refresher.IncidentRequest{WorkspaceID: store.DefaultWorkspaceID, IncidentID: "inc_nope"})
	require.ErrorIs(t, err, store.ErrNotFound)
}

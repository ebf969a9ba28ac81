package refresher_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// A leaked key read client-credentials connections: the incident rotation mints each a new
// token and revokes the exposed one at the provider (RFC 7009), as for an OAuth grant —
// the exposed tokens are inactive, the connections serve live ones, one connection.rotated
// event each; a dry run counts them as revocable and replaced. A connection with its own
// client revokes with that client, never the provider's.
func TestIncidentRotateMintedTokens(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		ctx := context.Background()
		e := newEnv(t, dialect.Dialect())
		srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{Clients: []oauthtest.MachineClient{
			{ID: "app", Secret: "app-secret"}, {ID: "own", Secret: "own-secret"}}})
		p := machineProvider(srv, oauthflow.AuthModeClientCredentials, oauthflow.ClientSecretBasic)
		p.RevocationURL = srv.RevocationURL()
		e.setProvider(p, oauthflow.ClientCredentials{ClientID: "app", ClientSecret: secretOf("app-secret")})
		const n = 3
		var conns, old []string
		for i := range n {
			in := oauthflow.MachineConnect{}
			if i == 0 { // the end user's own client: it revokes what it minted (fosite refuses another client)
				in.ClientCredentials = &oauthflow.GrantClient{ClientID: "own", ClientSecret: secretOf("own-secret")}
			}
			c := e.addMinted(in, time.Now)
			conns = append(conns, c.ID)
			old = append(old, e.open(e.row(c.ID), vault.AccessTokenBinding))
			require.True(t, srv.Active(ctx, old[len(old)-1]))
		}
		readBy(t, e, "apk_leaked", time.Now().Add(-time.Hour), conns...)

		r := e.refresher(refresher.Config{})
		v, err := refresher.NewRevocations(r, e.store, time.Hour)
		require.NoError(t, err)
		in, err := refresher.NewIncidents(r, v, e.store)
		require.NoError(t, err)
		req := refresher.IncidentRequest{WorkspaceID: store.DefaultWorkspaceID, APIKeyID: "apk_leaked", Since: 24 * time.Hour, Actor: "test"}

		dry := req
		dry.DryRun = true
		res, err := in.Rotate(ctx, dry)
		require.NoError(t, err)
		require.Equal(t, refresher.IncidentResult{DryRun: true, Connections: n, Revoked: n, Refreshed: n,
			NotRevocable: []string{}, Failed: []string{}}, res)

		mints := srv.Mints()
		res, err = in.Rotate(ctx, req)
		require.NoError(t, err)
		require.Equal(t, n, res.Revoked, "%+v", res)
		require.Equal(t, n, res.Refreshed)
		require.Empty(t, res.NotRevocable)
		require.Equal(t, mints+n, srv.Mints(), "each connection minted exactly once")

		tokens := e.tokens(r)
		for i, id := range conns {
			require.False(t, srv.Active(ctx, old[i]), "the exposed minted token is inactive at the provider")
			cred, err := tokens.Credential(ctx, store.DefaultWorkspaceID, id, 0)
			require.NoError(t, err)
			require.NotEqual(t, old[i], cred.Secret.Reveal())
			require.True(t, srv.Active(ctx, cred.Secret.Reveal()))
		}
		evs, err := e.store.ListAudit(ctx, store.DefaultWorkspaceID, "", 10_000)
		require.NoError(t, err)
		rotated := 0
		for _, ev := range evs {
			if ev.Type == audit.ConnectionRotated {
				require.Equal(t, audit.Success, ev.Outcome, ev.Data)
				rotated++
			}
		}
		require.Equal(t, n, rotated)
	})
}

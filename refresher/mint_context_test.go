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

// A database writer edits whom a minted connection acts for — its connection_config (a
// GitHub App installation, a jwt_bearer subject; here a declared "subject") — leaving every
// origin alone. The connection's access token and grant secret were sealed with the digest
// of its configuration (store.Connection.BindingContext), so they no longer open: the token
// is not served, the next mint is refused before the provider is asked (origin_changed, a
// credential.binding_refused event), nothing is minted for the other principal.
func TestMintedConnectionConfigEditRefused(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		ctx := context.Background()
		e := newEnv(t, dialect.Dialect())
		srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{Clients: []oauthtest.MachineClient{{ID: "own", Secret: "own-secret"}}})
		p := machineProvider(srv, oauthflow.AuthModeClientCredentials, oauthflow.ClientSecretBasic)
		p.ConnectionConfig = []oauthflow.ConfigParam{{Name: "subject", DisplayName: "Subject", Pattern: "^[a-z]{1,16}$"}}
		e.setProvider(p, oauthflow.ClientCredentials{})
		c := e.addMinted(oauthflow.MachineConnect{ConnectionConfig: map[string]string{"subject": "alice"},
			ClientCredentials: &oauthflow.GrantClient{ClientID: "own", ClientSecret: secretOf("own-secret")}}, time.Now)
		r := e.refresher(refresher.Config{ForcedInterval: time.Nanosecond}) // each forced mint below is its own
		tokens := e.tokens(r)
		_, err := tokens.Credential(ctx, c.WorkspaceID, c.ID, 0)
		require.NoError(t, err, "as created, the token opens")
		_, err = r.Refresh(ctx, c.WorkspaceID, c.ID)
		require.NoError(t, err, "and a mint goes through")
		mints := srv.Mints()

		require.NoError(t, e.store.DB().Exec(`UPDATE connections SET connection_config = ? WHERE id = ?`,
			`{"subject":"mallory"}`, c.ID).Error)
		e.store.InvalidateConnections()
		_, err = tokens.Credential(ctx, c.WorkspaceID, c.ID, 0)
		require.ErrorIs(t, err, vault.ErrDecrypt, "the token is not served for another subject")
		_, err = r.Refresh(ctx, c.WorkspaceID, c.ID)
		require.ErrorIs(t, err, vault.ErrOriginNotBound)
		require.Equal(t, mints, srv.Mints(), "nothing minted for the other subject")
		require.Equal(t, 1, countAudit(t, e.store, audit.BindingRefused, audit.Failure))
	})
}

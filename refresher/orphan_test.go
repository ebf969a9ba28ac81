package refresher_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/oauthflow/githubapptest"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// failingCreate is the store whose CreateConnection fails (the database gone after the
// mint), keeping the token it was handed (opened with creds) in token; audit events still
// reach the store.
type failingCreate struct {
	*store.Store
	creds *vault.Keyring
	token *string
}

var errStoreDown = errors.New("store: connection refused")

func (f failingCreate) CreateConnection(ctx context.Context, c store.Connection, cred store.Credential, _ ...audit.Event) error {
	tok, err := f.creds.Open(ctx, store.AccessTokenBinding(c, store.BoundOrigins(cred.AccessOrigins)), cred.AccessToken)
	if err == nil {
		*f.token = tok.Reveal()
	}
	return errStoreDown
}

// TestMachineCreateRevokesOrphanedToken: when POST /v1/connections mints the first token
// and then cannot store it, the token is revoked at the provider (GitHub's
// DELETE /installation/token), not left valid for its hour; the creation fails with the
// store's error.
func TestMachineCreateRevokesOrphanedToken(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			e := newEnv(t, dialect)
			gh := githubapptest.New(t, githubapptest.Options{})
			p := oauthflow.Provider{Name: "gh", AuthMode: oauthflow.AuthModeGitHubApp,
				TokenURL: gh.URL + "/app/installations/{installation_id}/access_tokens", APIBaseURL: gh.URL,
				ConnectionConfig: []oauthflow.ConfigParam{{Name: "installation_id", Pattern: "^[0-9]{1,20}$"}}}
			e.setProvider(p, oauthflow.ClientCredentials{ClientID: gh.AppID(), ClientSecret: vault.NewSecret(gh.PrivateKeyPEM()),
				SecretOrigins: p.ClientSecretOrigins()})
			var minted string
			m, err := oauthflow.NewMachines(oauthflow.MachineDeps{Store: failingCreate{e.store, e.creds, &minted}, Providers: e.provs, Creds: e.creds,
				ClientFor: func(oauthflow.Provider) (*http.Client, error) { return e.hc, nil }})
			require.NoError(t, err)
			_, err = m.Create(context.Background(), oauthflow.MachineConnect{WorkspaceID: store.DefaultWorkspaceID, Provider: "gh",
				EndUserID: "u", Actor: "apk_test", ConnectionConfig: map[string]string{"installation_id": "1001"}})
			require.ErrorIs(t, err, errStoreDown)
			require.EqualValues(t, 1, gh.Mints())
			require.EqualValues(t, 1, gh.Revocations(), "the orphaned token is revoked")
			rec, ok := gh.Token(minted)
			require.True(t, ok)
			require.True(t, rec.Revoked)
		})
	}
}

// The same for an oauth2_client_credentials connection with its own client: the orphaned
// token is revoked at the provider's revocation_url (RFC 7009) with that client.
func TestMachineCreateRevokesOrphanedClientCredentialsToken(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		ctx := context.Background()
		e := newEnv(t, dialect.Dialect())
		srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{Clients: []oauthtest.MachineClient{
			{ID: "app", Secret: "app-secret"}, {ID: "own", Secret: "own-secret"}}})
		p := machineProvider(srv, oauthflow.AuthModeClientCredentials, oauthflow.ClientSecretBasic)
		p.RevocationURL = srv.RevocationURL()
		e.setProvider(p, oauthflow.ClientCredentials{ClientID: "app", ClientSecret: secretOf("app-secret")})
		for _, own := range []bool{false, true} {
			var minted string
			m, err := oauthflow.NewMachines(oauthflow.MachineDeps{Store: failingCreate{e.store, e.creds, &minted}, Providers: e.provs,
				Creds: e.creds, ClientFor: func(oauthflow.Provider) (*http.Client, error) { return e.hc, nil }})
			require.NoError(t, err)
			in := oauthflow.MachineConnect{WorkspaceID: store.DefaultWorkspaceID, Provider: "test", EndUserID: "u", Actor: "apk_test"}
			if own {
				in.ClientCredentials = &oauthflow.GrantClient{ClientID: "own", ClientSecret: secretOf("own-secret")}
			}
			_, err = m.Create(ctx, in)
			require.ErrorIs(t, err, errStoreDown)
			require.NotEmpty(t, minted)
			require.False(t, srv.Active(ctx, minted), "own client %v: the orphaned token is revoked", own)
		}
	})
}

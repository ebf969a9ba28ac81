package refresher_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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

// machineProvider is a client-credentials (or jwt_bearer) provider at the test server.
func machineProvider(srv *oauthtest.MachineServer, mode oauthflow.AuthMode, method oauthflow.TokenAuthMethod) oauthflow.Provider {
	return oauthflow.Provider{Name: "test", DisplayName: "Test", AuthMode: mode, TokenURL: srv.TokenURL(),
		TokenAuthMethod: method, DefaultScopes: []string{"read"}, APIBaseURL: srv.URL + "/api"}
}

// addMinted creates a machine connection as POST /v1/connections does (oauthflow.Machines:
// one mint, then the connection with its sealed grant secret and token) and returns it.
func (e *env) addMinted(in oauthflow.MachineConnect, now func() time.Time) store.Connection {
	e.t.Helper()
	m, err := oauthflow.NewMachines(oauthflow.MachineDeps{Store: e.store, Providers: e.provs, Creds: e.creds,
		ClientFor: func(oauthflow.Provider) (*http.Client, error) { return e.hc, nil }, Now: now})
	require.NoError(e.t, err)
	in.WorkspaceID, in.Provider, in.EndUserID, in.Actor = store.DefaultWorkspaceID, "test", "u", "apk_test"
	c, err := m.Create(context.Background(), in)
	require.NoError(e.t, err)
	return c
}

// A minted token is served from the row until it ages into the lead window; the next read
// then mints exactly once (the provider's own count), with the connection's own client, and
// the grant secret stays as it was stored.
func TestMintedTokenReMintedOnceInLeadWindow(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		e := newEnv(t, dialect.Dialect())
		srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{Clients: []oauthtest.MachineClient{
			{ID: "app", Secret: "app-secret"}, {ID: "own", Secret: "own-secret"}}})
		e.setProvider(machineProvider(srv, oauthflow.AuthModeClientCredentials, oauthflow.ClientSecretBasic),
			oauthflow.ClientCredentials{ClientID: "app", ClientSecret: secretOf("app-secret")})
		var offset atomic.Int64
		now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		c := e.addMinted(oauthflow.MachineConnect{ClientCredentials: &oauthflow.GrantClient{ClientID: "own", ClientSecret: secretOf("own-secret")}}, now)
		require.Equal(t, int64(1), srv.Mints(), "created with one mint")
		require.Equal(t, "Basic "+base64.StdEncoding.EncodeToString([]byte("own:own-secret")), srv.LastTokenHeader().Get("Authorization"),
			"the connection's own client, not the provider's")
		first := e.row(c.ID)
		require.NotEmpty(t, first.Credential.GrantSecret)

		r := e.refresher(refresher.Config{}, refresher.WithClock(now))
		tokens := refresher.NewTokens(e.store, e.creds, r, now)
		for range 3 {
			cred, err := tokens.Credential(context.Background(), c.WorkspaceID, c.ID, 0)
			require.NoError(t, err)
			require.Equal(t, oauthflow.AuthModeClientCredentials, cred.Kind)
			require.Equal(t, e.open(first, vault.AccessTokenBinding), cred.Secret.Reveal())
		}
		require.Equal(t, int64(1), srv.Mints(), "outside the lead window: served from the row")

		offset.Store(int64(55 * time.Minute)) // 5 minutes left of the hour: inside the 10-minute lead
		var got []string
		for range 3 {
			cred, err := tokens.Credential(context.Background(), c.WorkspaceID, c.ID, 0)
			require.NoError(t, err)
			got = append(got, cred.Secret.Reveal())
			require.True(t, srv.Active(context.Background(), cred.Secret.Reveal()))
		}
		require.Equal(t, int64(2), srv.Mints(), "exactly one mint in the lead window")
		require.Equal(t, got[0], got[2])
		require.NotEqual(t, e.open(first, vault.AccessTokenBinding), got[0])
		row := e.row(c.ID)
		require.Equal(t, first.Credential.GrantSecret, row.Credential.GrantSecret, "the commit keeps the grant secret")
		require.Empty(t, row.Credential.RefreshToken)
		require.Equal(t, 1, countAudit(t, e.store, audit.TokenRefresh, audit.Success))
	})
}

// Two replicas (two Refreshers on one database) asked at once for a connection whose token
// is due: the provider mints exactly once and every caller gets that token.
func TestMintAcrossReplicasOnce(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		e := newEnv(t, dialect.Dialect())
		srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{Clients: []oauthtest.MachineClient{{ID: "app", Secret: "app-secret"}},
			AccessTokenLifespan: 5 * time.Minute}) // inside the lead window from the start
		e.setProvider(machineProvider(srv, oauthflow.AuthModeClientCredentials, oauthflow.ClientSecretBasic),
			oauthflow.ClientCredentials{ClientID: "app", ClientSecret: secretOf("app-secret")})
		c := e.addMinted(oauthflow.MachineConnect{}, time.Now) // the provider's client
		require.Empty(t, e.row(c.ID).Credential.GrantSecret)
		base := srv.Mints()
		cfg := refresher.Config{WaitBusy: 20 * time.Second}
		replicas := []*refresher.Refresher{e.refresher(cfg), e.refresher(cfg)}
		var wg sync.WaitGroup
		toks := make(chan string, 16)
		errs := make(chan error, 16)
		start := make(chan struct{})
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				cred, err := e.tokens(replicas[i%2]).Credential(context.Background(), c.WorkspaceID, c.ID, 0)
				if err != nil {
					errs <- err
					return
				}
				toks <- cred.Secret.Reveal()
			}()
		}
		close(start)
		wg.Wait()
		close(toks)
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, base+1, srv.Mints(), "one mint at the provider for sixteen callers on two replicas")
		seen := map[string]bool{}
		for tok := range toks {
			seen[tok] = true
		}
		require.Len(t, seen, 1)
		for tok := range seen {
			require.True(t, srv.Active(context.Background(), tok))
		}
	})
}

// A re-mint the provider refuses with invalid_client (the client's secret was rotated or
// revoked) makes the connection needs_reauth: 409 to the reader, no retry storm.
func TestMintInvalidClientNeedsReauth(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		e := newEnv(t, dialect.Dialect())
		srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{Clients: []oauthtest.MachineClient{{ID: "own", Secret: "own-secret",
			AuthMethod: "client_secret_post"}}, AccessTokenLifespan: 5 * time.Minute})
		e.setProvider(machineProvider(srv, oauthflow.AuthModeClientCredentials, oauthflow.ClientSecretPost), oauthflow.ClientCredentials{})
		c := e.addMinted(oauthflow.MachineConnect{ClientCredentials: &oauthflow.GrantClient{ClientID: "own", ClientSecret: secretOf("own-secret")}}, time.Now)
		srv.SetClientSecret(t, "own", "rotated-elsewhere")
		r := e.refresher(refresher.Config{})
		_, err := e.tokens(r).Credential(context.Background(), c.WorkspaceID, c.ID, 0)
		require.ErrorIs(t, err, refresher.ErrNeedsReauth)
		row := e.row(c.ID)
		require.Equal(t, store.StatusNeedsReauth, row.Status)
		require.Equal(t, "invalid_client", row.StatusReason)
		require.Nil(t, row.NextRefreshAt, "not swept again")
		calls := srv.TokenCalls()
		_, err = e.tokens(r).Credential(context.Background(), c.WorkspaceID, c.ID, 0)
		require.ErrorIs(t, err, refresher.ErrNeedsReauth)
		require.Equal(t, calls, srv.TokenCalls(), "no further call")
	})
}

// jwt_bearer with a generated service-account key: the sweep mints due tokens (fosite
// checks iss, sub, aud, exp and a new jti every time) without client authentication.
func TestSweepMintsJWTBearer(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		e := newEnv(t, dialect.Dialect())
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{AnonymousJWTBearer: true, AccessTokenLifespan: 5 * time.Minute,
			Issuers: []oauthtest.TrustedIssuer{{Issuer: "bot@example", Subject: "bot@example", PublicKey: key.Public(), KeyID: "k1"}}})
		e.setProvider(machineProvider(srv, oauthflow.AuthModeJWTBearer, oauthflow.NoClientAuth), oauthflow.ClientCredentials{})
		der, err := x509.MarshalPKCS8PrivateKey(key)
		require.NoError(t, err)
		sa, err := json.Marshal(map[string]string{"type": "service_account", "client_email": "bot@example", "private_key_id": "k1",
			"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "token_uri": "https://attacker.example/token"})
		require.NoError(t, err)
		c := e.addMinted(oauthflow.MachineConnect{ServiceAccount: vault.NewSecret(string(sa))}, time.Now)
		require.Equal(t, oauthflow.GrantTypeJWTBearer, srv.LastTokenForm()["grant_type"][0])
		before := e.open(e.row(c.ID), vault.AccessTokenBinding)
		st, err := e.refresher(refresher.Config{}).Sweep(context.Background())
		require.NoError(t, err)
		require.Equal(t, int64(1), st.Refreshed)
		require.Equal(t, int64(2), srv.Mints())
		after := e.open(e.row(c.ID), vault.AccessTokenBinding)
		require.NotEqual(t, before, after)
		require.True(t, srv.Active(context.Background(), after))
		require.False(t, strings.Contains(string(e.row(c.ID).Credential.GrantSecret), "PRIVATE"), "sealed")
	})
}

// A connection's grant secret goes only to the token endpoint it was stored for: after the
// provider's token_url moves to another origin, a mint is refused before anything is sent
// (origin_changed, credential.binding_refused audited) and the new endpoint sees nothing.
func TestMintGrantSecretBoundToTokenEndpoint(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		e := newEnv(t, dialect.Dialect())
		srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{Clients: []oauthtest.MachineClient{{ID: "own", Secret: "own-secret"}},
			AccessTokenLifespan: 5 * time.Minute})
		other := oauthtest.NewMachine(t, oauthtest.MachineOptions{Clients: []oauthtest.MachineClient{{ID: "own", Secret: "own-secret"}}})
		p := machineProvider(srv, oauthflow.AuthModeClientCredentials, oauthflow.ClientSecretBasic)
		e.setProvider(p, oauthflow.ClientCredentials{})
		c := e.addMinted(oauthflow.MachineConnect{ClientCredentials: &oauthflow.GrantClient{ClientID: "own", ClientSecret: secretOf("own-secret")}}, time.Now)
		p.TokenURL = other.TokenURL() // re-pointed (an API base on the old origin keeps the access token's binding valid)
		e.setProvider(p, oauthflow.ClientCredentials{})
		_, err := e.tokens(e.refresher(refresher.Config{})).Credential(context.Background(), c.WorkspaceID, c.ID, 0)
		require.ErrorIs(t, err, vault.ErrOriginNotBound)
		require.Zero(t, other.TokenCalls(), "nothing sent to the new origin")
		require.Equal(t, 1, countAudit(t, e.store, audit.BindingRefused, audit.Failure))
	})
}

// A minted-mode connection that holds no access token (creation always stores the first,
// so only a database writer makes one) is not minted: the origins its next token would be
// bound to are unauthenticated without the token they are the associated data of
// (lease.go accessBindingAuthentic). Nothing is sent to the provider; the read fails with
// origin_changed and a credential.binding_refused event.
func TestMintedConnectionWithoutTokenRefused(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, dialect *store.Store) {
		e := newEnv(t, dialect.Dialect())
		srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{Clients: []oauthtest.MachineClient{{ID: "own", Secret: "own-secret"}}})
		p := machineProvider(srv, oauthflow.AuthModeClientCredentials, oauthflow.ClientSecretBasic)
		e.setProvider(p, oauthflow.ClientCredentials{})
		ctx := context.Background()
		now := time.Now().UTC()
		c := store.Connection{ID: "conn_notokenyet", WorkspaceID: store.DefaultWorkspaceID, Provider: "test", EndUserID: "u",
			AuthMode: string(oauthflow.AuthModeClientCredentials), Status: store.StatusActive, Scopes: store.Strings{},
			Version: 1, CreatedAt: now, UpdatedAt: now}
		grant := oauthflow.GrantClient{ClientID: "own", ClientSecret: secretOf("own-secret")}
		sealed, err := e.creds.Seal(ctx, store.GrantSecretBinding(c, p.GrantSecretOrigins()), grant.Sealed())
		require.NoError(t, err)
		require.NoError(t, e.store.CreateConnection(ctx, c, store.Credential{ConnectionID: c.ID, WorkspaceID: c.WorkspaceID,
			GrantSecret: sealed, GrantOrigins: store.StoredOrigins(p.GrantSecretOrigins()),
			AccessOrigins: store.StoredOrigins(p.AccessTokenOrigins()), UpdatedAt: now}))
		_, err = e.tokens(e.refresher(refresher.Config{})).Credential(ctx, c.WorkspaceID, c.ID, 0)
		require.ErrorIs(t, err, vault.ErrOriginNotBound)
		require.Zero(t, srv.TokenCalls(), "nothing sent to the provider")
		require.Equal(t, 1, countAudit(t, e.store, audit.BindingRefused, audit.Failure))
	})
}

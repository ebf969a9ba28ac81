package refresher_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/kms/backends"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

const testRedirect = "http://127.0.0.1/cb"

// env is one store with a credentials keyring and a provider table.
type env struct {
	t     testing.TB
	store *store.Store
	creds *vault.Keyring
	provs *fakeProviders
	hc    *http.Client
}

// fakeProviders resolves every provider key to one configured provider.
type fakeProviders struct {
	p     atomic.Pointer[oauthflow.Provider]
	cc    oauthflow.ClientCredentials
	calls atomic.Int64
}

func (f *fakeProviders) Provider(context.Context, string, string) (oauthflow.Provider, oauthflow.ClientCredentials, error) {
	f.calls.Add(1)
	p, cc := *f.p.Load(), f.cc
	if !cc.ClientSecret.IsZero() && cc.SecretOrigins == nil {
		cc.SecretOrigins = p.RefreshTokenOrigins() // as if stored with the current configuration
	}
	return p, cc, nil
}

func newEnv(t testing.TB, dialect string) *env {
	t.Helper()
	ctx := context.Background()
	s := storetest.Open(t, dialect)
	require.NoError(t, s.EnsureDefaultWorkspace(ctx))
	ring, err := backends.OpenRing(ctx, "local://"+filepath.Join(t.TempDir(), "kek.key"), nil, backends.Options{CreateLocal: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ring.Close() })
	kr, err := vault.NewKeyring(vault.PurposeCredentials, ring, s)
	require.NoError(t, err)
	oc, err := outbound.New(outbound.Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Timeouts: outbound.Timeouts{Overall: 2 * time.Second}})
	require.NoError(t, err)
	return &env{t: t, store: s, creds: kr, provs: &fakeProviders{}, hc: oc.TokenClient()}
}

func (e *env) setProvider(p oauthflow.Provider, cc oauthflow.ClientCredentials) {
	if p.AuthMode == "" {
		p.AuthMode = oauthflow.AuthModeOAuth2
	}
	if p.Name == "" {
		p.Name = "test"
	}
	if p.TokenAuthMethod == "" && p.AuthMode == oauthflow.AuthModeOAuth2 {
		p.TokenAuthMethod = oauthflow.ClientSecretBasic
	}
	e.provs.p.Store(&p)
	e.provs.cc = cc
}

// bindings are the origins a credential stored now is bound to: the current provider's.
func (e *env) bindings() (access, refresh vault.Origins) {
	if p := e.provs.p.Load(); p != nil {
		return p.AccessTokenOrigins(), p.RefreshTokenOrigins()
	}
	return vault.Origins{}, vault.Origins{}
}

func (e *env) refresher(cfg refresher.Config, opts ...refresher.Option) *refresher.Refresher {
	e.t.Helper()
	r, err := refresher.New(cfg, refresher.Deps{Store: e.store, Creds: e.creds, Providers: e.provs, HTTPClient: e.hc}, opts...)
	require.NoError(e.t, err)
	return r
}

// tokens is the token service over e's store with r refreshing (nil: none).
func (e *env) tokens(r *refresher.Refresher) *refresher.Tokens {
	return refresher.NewTokens(e.store, e.creds, r, nil)
}

// addConn stores an OAuth connection with the given tokens, expiring at exp.
func (e *env) addConn(access, refresh string, exp time.Time) store.Connection {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	exp = exp.UTC()
	c := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: store.DefaultWorkspaceID, Provider: "test", EndUserID: "u",
		AuthMode: "oauth2", Status: store.StatusActive, Scopes: store.Strings{"read"}, ExpiresAt: &exp, NextRefreshAt: &exp,
		Version: 1, CreatedAt: now, UpdatedAt: now}
	ao, ro := e.bindings()
	cred := store.Credential{ConnectionID: c.ID, WorkspaceID: c.WorkspaceID, TokenType: "Bearer", UpdatedAt: now,
		AccessOrigins: store.StoredOrigins(ao), RefreshOrigins: store.StoredOrigins(ro)}
	var err error
	cred.AccessToken, err = e.creds.Seal(ctx, vault.AccessTokenBinding(c.WorkspaceID, c.ID, ao), vault.NewSecret(access))
	require.NoError(e.t, err)
	if refresh != "" {
		cred.RefreshToken, err = e.creds.Seal(ctx, vault.RefreshTokenBinding(c.WorkspaceID, c.ID, ro), vault.NewSecret(refresh))
		require.NoError(e.t, err)
	}
	require.NoError(e.t, e.store.CreateConnection(ctx, c, cred))
	return c
}

// addAPIKeyConn stores an API-key connection of provider "stripe" due for a health check,
// its key bound to the current provider's origins.
func (e *env) addAPIKeyConn(key string) store.Connection {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	c := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: store.DefaultWorkspaceID, Provider: "stripe", EndUserID: "u",
		AuthMode: "api_key", Status: store.StatusActive, Scopes: store.Strings{}, NextRefreshAt: &now, Version: 1, CreatedAt: now, UpdatedAt: now}
	o := e.provs.p.Load().APIKeyOrigins()
	sealed, err := e.creds.Seal(ctx, vault.APIKeyBinding(c.WorkspaceID, c.ID, o), vault.NewSecret(key))
	require.NoError(e.t, err)
	require.NoError(e.t, e.store.CreateConnection(ctx, c, store.Credential{ConnectionID: c.ID, WorkspaceID: c.WorkspaceID,
		APIKey: sealed, AccessOrigins: store.StoredOrigins(o), UpdatedAt: now}))
	return c
}

func (e *env) row(id string) store.ConnectionCredential {
	e.t.Helper()
	cc, err := e.store.ConnectionWithCredential(context.Background(), store.DefaultWorkspaceID, id)
	require.NoError(e.t, err)
	return cc
}

// open opens the connection's access token, or its refresh token when bind is
// vault.RefreshTokenBinding, with the binding stored beside it.
func (e *env) open(cc store.ConnectionCredential, bind func(workspaceID, connectionID string, o vault.Origins) vault.Binding) string {
	e.t.Helper()
	b, blob := bind(cc.WorkspaceID, cc.ID, store.BoundOrigins(cc.Credential.AccessOrigins)), cc.Credential.AccessToken
	if b.Field == vault.RefreshTokenBinding("", "", nil).Field {
		b, blob = bind(cc.WorkspaceID, cc.ID, store.BoundOrigins(cc.Credential.RefreshOrigins)), cc.Credential.RefreshToken
	}
	b.Context = cc.BindingContext() // a minted connection's configuration digest (store.AccessTokenBinding)
	sec, err := e.creds.Open(context.Background(), b, blob)
	require.NoError(e.t, err)
	return sec.Reveal()
}

// fositeProvider is the provider entry of an oauthtest server, its token endpoint behind
// serialTokenURL.
func fositeProvider(t *testing.T, srv *oauthtest.Server) oauthflow.Provider {
	return oauthflow.Provider{Name: "test", AuthMode: oauthflow.AuthModeOAuth2, AuthorizationURL: srv.AuthorizationURL(),
		TokenURL: serialTokenURL(t, srv), TokenAuthMethod: oauthflow.ClientSecretBasic, RotatesRefreshTokens: true}
}

// serialTokenURL fronts the test server's token endpoint with one that lets one request
// through at a time: fosite's in-memory store races under concurrent refresh-token
// rotations (go test -race flags it inside fosite/storage), which is the test provider's
// problem, not the proxy's.
func serialTokenURL(t *testing.T, srv *oauthtest.Server) string {
	target, err := url.Parse(srv.URL)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front.URL + "/token"
}

// grant runs the authorization code flow with PKCE against the test server (auto-login)
// and returns its first tokens.
func grant(t *testing.T, srv *oauthtest.Server) *oauth2.Token {
	t.Helper()
	conf := oauth2.Config{ClientID: srv.ClientID(), ClientSecret: srv.ClientSecret(), RedirectURL: testRedirect,
		Scopes: []string{"read"}, Endpoint: oauth2.Endpoint{AuthURL: srv.AuthorizationURL(), TokenURL: srv.TokenURL(),
			AuthStyle: oauth2.AuthStyleInHeader}}
	verifier := oauth2.GenerateVerifier()
	state := "state-" + ids.Random(8)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noRedirect.Get(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusSeeOther, res.StatusCode, "authorize")
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(loc.String(), testRedirect), loc.String())
	tok, err := conf.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	require.NotEmpty(t, tok.RefreshToken)
	return tok
}

func newFosite(t *testing.T, lifespan time.Duration) *oauthtest.Server {
	return oauthtest.New(t, oauthtest.Options{AutoLogin: true, RedirectURIs: []string{testRedirect}, AccessTokenLifespan: lifespan})
}

func secretOf(s string) vault.Secret { return vault.NewSecret(s) }

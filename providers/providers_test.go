package providers_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/providers"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// plainSealer "seals" by prefixing the binding: enough to check that the secret is
// sealed and opened under the provider's binding.
type plainSealer struct{}

func (plainSealer) Seal(_ context.Context, b vault.Binding, s vault.Secret) ([]byte, error) {
	return []byte(plainPrefix(b) + s.Reveal()), nil
}

// plainPrefix is what stands in for the associated data: the binding, origins included.
func plainPrefix(b vault.Binding) string {
	p := b.WorkspaceID + "|" + b.OwnerID + "|" + b.Field + "|"
	if b.Origins.Bound() {
		p += "origins=" + strings.Join(b.Origins, ",") + "|"
	}
	return p
}

func (plainSealer) Open(_ context.Context, b vault.Binding, env []byte) (vault.Secret, error) {
	prefix := plainPrefix(b)
	if len(env) < len(prefix) || string(env[:len(prefix)]) != prefix {
		return vault.Secret{}, errors.New("binding mismatch")
	}
	return vault.NewSecret(string(env[len(prefix):])), nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newService(t *testing.T) (*providers.Service, *store.Store, *clock) {
	return newServiceOn(t, store.SQLite)
}

func newServiceOn(t *testing.T, dialect string) (*providers.Service, *store.Store, *clock) {
	t.Helper()
	st := storetest.Open(t, dialect)
	require.NoError(t, st.EnsureDefaultWorkspace(context.Background()))
	cat, err := oauthflow.LoadCatalog()
	require.NoError(t, err)
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	svc, err := providers.New(providers.Settings{PublicURL: "https://proxy.example.com/",
		URLs: providers.URLPolicy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}},
		st, plainSealer{}, cat, providers.WithClock(c.now))
	require.NoError(t, err)
	return svc, st, c
}

// writer is a caller with scope providers:write only; adminCaller holds admin.
var (
	writer      = providers.Caller{Actor: "key_1"}
	adminCaller = providers.Caller{Actor: "key_admin", Admin: true}
)

func raw(v any) json.RawMessage { b, _ := json.Marshal(v); return b }

func custom() providers.Request {
	return providers.Request{Key: "acme", ClientID: "Iv1.abc", Scopes: []string{"read"},
		CallbackURLs: []string{"https://proxy.example.com/v1/oauth/callback"},
		ReturnURLs:   []string{"https://app.example.com/done"},
		Overrides: map[string]json.RawMessage{"authorization_url": raw("https://auth.example.com/authorize"),
			"token_url": raw("https://auth.example.com/token")}}
}

func code(err error) string {
	var p *problem.Problem
	if errors.As(err, &p) {
		return p.Code
	}
	return ""
}

func TestBuildRefuses(t *testing.T) {
	svc, _, _ := newService(t)
	for _, tc := range []struct {
		name string
		mod  func(r *providers.Request)
		code string
	}{
		{"bad key", func(r *providers.Request) { r.Key = "Acme" }, "invalid_request"},
		{"wildcard callback", func(r *providers.Request) { r.CallbackURLs = []string{"https://*.example.com/cb"} }, "invalid_callback_url"},
		{"fragment return", func(r *providers.Request) { r.ReturnURLs = []string{"https://x.example.com/cb#f"} }, "invalid_callback_url"},
		{"http callback", func(r *providers.Request) { r.CallbackURLs = []string{"http://x.example.com/cb"} }, "invalid_callback_url"},
		{"metadata token_url", func(r *providers.Request) { r.Overrides["token_url"] = raw("https://169.254.169.254/t") }, "unsafe_url"},
		{"private token_url", func(r *providers.Request) { r.Overrides["token_url"] = raw("https://10.0.0.1/t") }, "unsafe_url"},
		{"userinfo", func(r *providers.Request) { r.Overrides["token_url"] = raw("https://u:p@auth.example.com/t") }, "invalid_request"},
		{"plain http endpoint", func(r *providers.Request) { r.Overrides["token_url"] = raw("http://10.9.0.1/t") }, "invalid_request"},
		{"auth mode", func(r *providers.Request) { r.Overrides["auth_mode"] = raw("saml") }, "invalid_request"},
		{"template", func(r *providers.Request) { r.Template = "no-such-template" }, "invalid_request"},
		{"wrong type", func(r *providers.Request) { r.Overrides["pkce"] = raw("yes") }, "invalid_request"},
		{"tls", func(r *providers.Request) { r.Overrides["min_tls_version"] = raw("1.0") }, "invalid_request"},
		{"pins", func(r *providers.Request) { r.Overrides["pins"] = raw([]string{"sha1/AAAA"}) }, "invalid_request"},
		{"issuer", func(r *providers.Request) { r.Overrides["issuer"] = raw("http://auth.example.com") }, "invalid_request"},
		{"no client id", func(r *providers.Request) { r.ClientID = "" }, "invalid_request"},
		{"no token url", func(r *providers.Request) { delete(r.Overrides, "token_url") }, "invalid_request"},
		{"empty callbacks", func(r *providers.Request) { r.CallbackURLs = []string{} }, "invalid_callback_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := custom()
			tc.mod(&r)
			_, err := svc.Build(r)
			require.Equal(t, tc.code, code(err), "%v", err)
		})
	}
}

func TestBuildMergesTemplateAndDefaults(t *testing.T) {
	svc, _, _ := newService(t)
	cfg, err := svc.Build(providers.Request{Key: "github", Template: "github", ClientID: "Iv1.x",
		Overrides: map[string]json.RawMessage{"client_id": raw("ignored"), "name": raw("ignored"),
			"api_base_url": raw("https://ghe.example.com/api/v3")}})
	require.NoError(t, err)
	require.Equal(t, "https://github.com/login/oauth/authorize", cfg.AuthorizationURL, "from the template")
	require.Equal(t, "https://ghe.example.com/api/v3", cfg.APIBaseURL, "overridden")
	require.Equal(t, "Iv1.x", cfg.ClientID, "a workspace field is never taken from the overrides")
	require.Equal(t, "github", cfg.Name)
	require.Equal(t, []string{"https://proxy.example.com/v1/oauth/callback"}, cfg.CallbackURLs, "the proxy's own callback")
	require.Equal(t, cfg.DefaultScopes, cfg.Scopes)

	key, err := svc.Build(providers.Request{Key: "k", Overrides: map[string]json.RawMessage{"auth_mode": raw("api_key")}})
	require.NoError(t, err)
	require.Nil(t, key.CallbackURLs, "api_key providers get no callback")
	require.Equal(t, "k", key.DisplayName)
}

// A workspace cannot declare its provider's webhook signature scheme: an override of
// "webhook" is dropped and the template's stays (package inbound reads the catalog's).
func TestBuildIgnoresWebhookSchemeOverride(t *testing.T) {
	svc, _, _ := newService(t)
	cfg, err := svc.Build(providers.Request{Key: "github", Template: "github", ClientID: "Iv1.x",
		Overrides: map[string]json.RawMessage{"webhook": json.RawMessage(
			`{"algorithm":"hmac-sha1","signature_header":"X-Forged","encoding":"hex","signed":"{body}"}`)}})
	require.NoError(t, err)
	require.NotNil(t, cfg.Webhook)
	require.Equal(t, "X-Hub-Signature-256", cfg.Webhook.SignatureHeader)
	require.Equal(t, "hmac-sha256", cfg.Webhook.Algorithm)
}

func TestURLPolicy(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, tc := range []struct {
		url    string
		policy providers.URLPolicy
		ok     bool
	}{
		{"https://hooks.example.com/x", providers.URLPolicy{}, true},
		{"http://127.0.0.1:9/x", providers.URLPolicy{Dev: true, AllowCIDRs: allow}, true},
		{"http://127.0.0.1:9/x", providers.URLPolicy{AllowCIDRs: allow}, false},
		{"http://127.0.0.1:9/x", providers.URLPolicy{Dev: true}, false},
		{"https://127.0.0.1/x", providers.URLPolicy{}, false},
		{"https://hooks.example.com/x#f", providers.URLPolicy{}, false},
		{"/relative", providers.URLPolicy{}, false},
	} {
		err := tc.policy.Check(tc.url)
		require.Equal(t, tc.ok, err == nil, "%s %+v: %v", tc.url, tc.policy, err)
	}
}

// TestImportValidatesLikeTheAPI: the import refuses exactly what Put refuses (both call
// Build), and writes nothing of a document with one bad provider.
func TestImportValidatesLikeTheAPI(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := context.Background()
	bad := custom()
	bad.Key = "bad"
	bad.Overrides["token_url"] = raw("https://10.0.0.1/t")
	_, putErr := svc.Put(ctx, store.DefaultWorkspaceID, writer, bad, nil)
	require.Equal(t, "unsafe_url", code(putErr))

	good := custom()
	err := svc.Import(ctx, "controlplane", 7, []providers.WorkspaceImport{{WorkspaceID: store.DefaultWorkspaceID,
		Providers: []providers.Request{good, bad}}})
	var ie *providers.ImportError
	require.ErrorAs(t, err, &ie)
	require.Equal(t, "bad", ie.Key)
	require.Equal(t, putErr.Error(), ie.Err.Error())
	_, err = svc.Get(ctx, store.DefaultWorkspaceID, "acme")
	require.ErrorIs(t, err, store.ErrNotFound, "all or nothing")

	err = svc.Import(ctx, "controlplane", 7, []providers.WorkspaceImport{{WorkspaceID: "ws_nope"}})
	require.ErrorAs(t, err, &ie)
	require.EqualError(t, err, "workspace ws_nope does not exist")

	require.NoError(t, svc.Import(ctx, "controlplane", 7, []providers.WorkspaceImport{{WorkspaceID: store.DefaultWorkspaceID,
		Providers: []providers.Request{good}}}))
	imported, err := svc.Get(ctx, store.DefaultWorkspaceID, "acme")
	require.NoError(t, err)
	put, err := svc.Build(good)
	require.NoError(t, err)
	require.Equal(t, put, imported.Config)
}

func TestPutKeepsSecretAndResolveOpensIt(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := context.Background()
	secret := vault.NewSecret("s3cr3t-client")
	v, err := svc.Put(ctx, store.DefaultWorkspaceID, writer, custom(), &secret)
	require.NoError(t, err)
	require.True(t, v.ClientSecretSet)
	require.Equal(t, "s3cr", v.ClientSecretPrefix)
	v, err = svc.Put(ctx, store.DefaultWorkspaceID, writer, custom(), nil)
	require.NoError(t, err)
	require.True(t, v.ClientSecretSet, "an update without a secret keeps it")

	p, client, err := svc.Provider(ctx, store.DefaultWorkspaceID, "acme")
	require.NoError(t, err)
	require.Equal(t, "https://auth.example.com/token", p.TokenURL)
	require.Equal(t, "Iv1.abc", client.ClientID)
	require.Equal(t, "s3cr3t-client", client.ClientSecret.Reveal())

	list, err := svc.List(ctx, store.DefaultWorkspaceID)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.NoError(t, svc.Delete(ctx, store.DefaultWorkspaceID, "key_1", "acme"))
	_, err = svc.View(ctx, store.DefaultWorkspaceID, "acme")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestResolveFallsBackToAPIKeyTemplatesOnly(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := context.Background()
	var apiKey, oauth string
	for _, p := range svc.Catalog().All() {
		switch {
		case apiKey == "" && p.AuthMode == oauthflow.AuthModeAPIKey:
			apiKey = p.Name
		case oauth == "" && p.AuthMode == oauthflow.AuthModeOAuth2:
			oauth = p.Name
		}
	}
	e, configured, err := svc.Resolve(ctx, store.DefaultWorkspaceID, apiKey)
	require.NoError(t, err)
	require.False(t, configured)
	require.Equal(t, oauthflow.AuthModeAPIKey, e.AuthMode)
	_, client, err := svc.Provider(ctx, store.DefaultWorkspaceID, apiKey)
	require.NoError(t, err)
	require.Zero(t, client)

	_, _, err = svc.Resolve(ctx, store.DefaultWorkspaceID, oauth)
	require.ErrorIs(t, err, store.ErrNotFound, "an oauth2 template needs the workspace's configuration")
	_, err = svc.ResolveCached(ctx, store.DefaultWorkspaceID, "no-such-provider")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestResolveCachedForOneSecond(t *testing.T) {
	svc, _, c := newService(t)
	ctx := context.Background()
	_, err := svc.Put(ctx, store.DefaultWorkspaceID, writer, custom(), nil)
	require.NoError(t, err)
	p, err := svc.ResolveCached(ctx, store.DefaultWorkspaceID, "acme")
	require.NoError(t, err)
	require.Equal(t, "https://auth.example.com/token", p.TokenURL)

	changed := custom()
	changed.Overrides["token_url"] = raw("https://auth.example.com/token2") // same origin: providers:write suffices
	_, err = svc.Put(ctx, store.DefaultWorkspaceID, writer, changed, nil)
	require.NoError(t, err)
	p, err = svc.ResolveCached(ctx, store.DefaultWorkspaceID, "acme")
	require.NoError(t, err)
	require.Equal(t, "https://auth.example.com/token", p.TokenURL, "cached")
	c.t = c.t.Add(time.Second)
	p, err = svc.ResolveCached(ctx, store.DefaultWorkspaceID, "acme")
	require.NoError(t, err)
	require.Equal(t, "https://auth.example.com/token2", p.TokenURL, "expired after a second")
}

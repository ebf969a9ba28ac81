package providers_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/providers"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// machine is a custom oauth2_client_credentials provider with the workspace's client.
func machine() providers.Request {
	return providers.Request{Key: "m2m", ClientID: "svc-1", Overrides: map[string]json.RawMessage{
		"auth_mode": raw("oauth2_client_credentials"), "token_url": raw("https://auth.example.com/token"),
		"token_auth_method": raw("client_secret_basic"), "api_base_url": raw("https://api.example.com")}}
}

func TestMachineModeProviders(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := context.Background()
	secret := vault.NewSecret("m2m-client-secret")

	_, err := svc.Put(ctx, store.DefaultWorkspaceID, writer, machine(), &secret)
	require.NoError(t, err, "a client-credentials provider with the workspace's client")
	p, client, err := svc.Provider(ctx, store.DefaultWorkspaceID, "m2m")
	require.NoError(t, err)
	require.Equal(t, oauthflow.AuthModeClientCredentials, p.AuthMode)
	require.Equal(t, "m2m-client-secret", client.ClientSecret.Reveal())

	for name, tc := range map[string]struct {
		mod  func(r *providers.Request)
		code string
	}{
		"authorization_url on a minted mode": {func(r *providers.Request) {
			r.Overrides["authorization_url"] = raw("https://auth.example.com/authorize")
		}, "invalid_request"},
		"client auth a mode cannot use": {func(r *providers.Request) { r.Overrides["token_auth_method"] = raw("none") }, "invalid_request"},
		"github_app without an app id": {func(r *providers.Request) {
			r.ClientID = ""
			r.Overrides["auth_mode"] = raw("github_app")
			delete(r.Overrides, "token_auth_method")
			r.Overrides["token_url"] = raw("https://api.example.com/app/installations/{installation_id}/access_tokens")
			r.Overrides["connection_config"] = raw([]map[string]string{{"name": "installation_id", "display_name": "Installation", "pattern": "^[0-9]{1,20}$"}})
		}, "invalid_request"},
		"unknown mode": {func(r *providers.Request) { r.Overrides["auth_mode"] = raw("kerberos") }, "invalid_request"},
	} {
		r := machine()
		r.Key = "m2m-bad"
		tc.mod(&r)
		_, err := svc.Put(ctx, store.DefaultWorkspaceID, writer, r, &secret)
		require.Equal(t, tc.code, code(err), "%s: %v", name, err)
		if r.ClientID == "" {
			var p *problem.Problem
			require.ErrorAs(t, err, &p)
			require.Equal(t, "client_id", p.Errors[0].Field, "refused for the missing app id, not something else")
		}
	}

	// A basic provider holds no client secret.
	basic := providers.Request{Key: "intranet", Overrides: map[string]json.RawMessage{
		"auth_mode": raw("basic"), "api_base_url": raw("https://intranet.example.com")}}
	_, err = svc.Put(ctx, store.DefaultWorkspaceID, writer, basic, &secret)
	require.Equal(t, "invalid_request", code(err), "a client secret on a basic provider")
	_, err = svc.Put(ctx, store.DefaultWorkspaceID, writer, basic, nil)
	require.NoError(t, err)

	// Moving the token origin of a provider whose secret is bound to it needs admin and
	// the secret again, as for oauth2.
	moved := machine()
	moved.Overrides["token_url"] = raw("https://evil.example.net/token")
	_, err = svc.Put(ctx, store.DefaultWorkspaceID, writer, moved, &secret)
	require.Equal(t, "forbidden", code(err))
	_, err = svc.Put(ctx, store.DefaultWorkspaceID, adminCaller, moved, nil)
	require.Equal(t, "client_secret_required", code(err))
}

// TestResolveServesTemplatesWithoutWorkspaceClient: a template whose connections bring
// their own credential (api_key, basic, a jwt_bearer key, their own client) resolves
// without a workspace configuration; oauth2 and github_app templates do not.
func TestResolveServesTemplatesWithoutWorkspaceClient(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := context.Background()
	for _, p := range svc.Catalog().All() {
		_, configured, err := svc.Resolve(ctx, store.DefaultWorkspaceID, p.Name)
		require.False(t, configured)
		if p.NeedsWorkspaceClient() {
			require.ErrorIs(t, err, store.ErrNotFound, p.Name)
		} else {
			require.NoError(t, err, p.Name)
		}
	}
}

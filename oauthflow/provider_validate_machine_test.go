package oauthflow

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/vault/store"
)

func TestMachineModesValidate(t *testing.T) {
	const (
		basic = `
  - name: m
    display_name: M
    auth_mode: basic
    api_base_url: https://api.m.example
`
		cc = `
  - name: m
    display_name: M
    auth_mode: oauth2_client_credentials
    token_url: https://auth.m.example/token
    token_auth_method: private_key_jwt
    api_base_url: https://api.m.example
`
		jwt = `
  - name: m
    display_name: M
    auth_mode: jwt_bearer
    token_url: https://oauth2.m.example/token
    token_auth_method: none
    default_scopes: [a, b]
`
		app = `
  - name: m
    display_name: M
    auth_mode: github_app
    token_url: https://api.m.example/app/installations/{installation_id}/access_tokens
    api_base_url: https://api.m.example
    connection_config:
      - name: installation_id
        display_name: Installation
        pattern: "^[0-9]{1,20}$"
`
	)
	for _, doc := range []string{basic, cc, jwt, app, cc + "    categories: [hr, finance]\n"} {
		c, err := ParseCatalog([]byte("providers:" + doc))
		require.NoError(t, err, doc)
		p, _ := c.Get("m")
		require.Equal(t, p.AuthMode != AuthModeBasic, p.AuthMode.Minted())
	}
	for name, doc := range map[string]string{
		"basic with token_url":       basic + "    token_url: https://auth.m.example/token\n",
		"basic without api base":     strings.Replace(basic, "    api_base_url: https://api.m.example\n", "", 1),
		"cc with authorization_url":  cc + "    authorization_url: https://auth.m.example/authorize\n",
		"cc without token_url":       strings.Replace(cc, "    token_url: https://auth.m.example/token\n", "", 1),
		"cc with pkce":               cc + "    pkce: true\n",
		"cc with none":               strings.Replace(cc, "private_key_jwt", "none", 1),
		"jwt with private_key_jwt":   strings.Replace(jwt, "none", "private_key_jwt", 1),
		"app without placeholder":    strings.Replace(app, "{installation_id}", "1", 1),
		"app with scopes":            app + "    default_scopes: [repo]\n",
		"app with client auth":       app + "    token_auth_method: client_secret_basic\n",
		"unknown category":           cc + "    categories: [gardening]\n",
		"duplicate category":         cc + "    categories: [hr, hr]\n",
		"audience on oauth2":         "\n  - name: m\n    display_name: M\n    auth_mode: oauth2\n    authorization_url: https://a.m.example/a\n    token_url: https://a.m.example/t\n    token_auth_method: client_secret_basic\n    assertion_audience: https://a.m.example\n",
		"api key fields on a minted": cc + "    api_key_header: X-Key\n",
	} {
		_, err := ParseCatalog([]byte("providers:" + doc))
		require.ErrorIs(t, err, ErrInvalidProvider, name)
	}
}

func TestParseCatalogNameOnceAcrossFiles(t *testing.T) {
	_, err := ParseCatalog([]byte("providers:"+validEntry), []byte("providers:"+validEntry))
	require.ErrorContains(t, err, "duplicate name")
	c, err := LoadCatalog()
	require.NoError(t, err)
	require.Greater(t, c.Len(), 100)
}

// TestBindingContextCoversMintedModes: the store's list of minted modes (it cannot import
// this package) is AuthMode.Minted — a minted connection's token and grant secret carry
// its configuration's digest, every other connection's associated data is unchanged.
func TestBindingContextCoversMintedModes(t *testing.T) {
	for _, m := range []AuthMode{AuthModeOAuth2, AuthModeAPIKey, AuthModeBasic, AuthModeClientCredentials, AuthModeJWTBearer, AuthModeGitHubApp} {
		c := store.Connection{AuthMode: string(m), ConnectionConfig: `{"installation_id":"42"}`}
		require.Equal(t, m.Minted(), c.BindingContext() != "", m)
	}
	a := store.Connection{AuthMode: string(AuthModeGitHubApp), ConnectionConfig: `{"installation_id":"42"}`}
	b := a
	b.ConnectionConfig = `{"installation_id":"43"}`
	require.NotEqual(t, a.BindingContext(), b.BindingContext())
	b.ConnectionConfig = `{ "installation_id" : "42" }`
	require.Equal(t, a.BindingContext(), b.BindingContext(), "the digest is of the parsed configuration")
	require.Equal(t, store.Connection{AuthMode: "jwt_bearer"}.BindingContext(), store.Connection{AuthMode: "jwt_bearer", ConnectionConfig: "{}"}.BindingContext())
}

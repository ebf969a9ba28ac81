package oauthflow

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func testProvider() Provider {
	return Provider{Name: "test", DisplayName: "Test", AuthMode: AuthModeOAuth2,
		AuthorizationURL: "https://auth.example.com/authorize?tenant=abc", TokenURL: "https://auth.example.com/token",
		TokenAuthMethod: ClientSecretBasic, ScopeSeparator: ",",
		AuthorizationParams: map[string]string{"access_type": "offline"}}
}

func testRequest(t *testing.T) AuthRequest {
	t.Helper()
	state, _, err := NewState(testStateKID, testStateKey)
	require.NoError(t, err)
	v, err := NewVerifier()
	require.NoError(t, err)
	return AuthRequest{ClientID: "cid", RedirectURI: "https://proxy.example.com/v1/oauth/callback",
		Scopes: []string{"repo", "user"}, State: state, Verifier: v}
}

func TestAuthCodeURL(t *testing.T) {
	r := testRequest(t)
	raw, err := AuthCodeURL(testProvider(), r)
	require.NoError(t, err)
	u, err := url.Parse(raw)
	require.NoError(t, err)
	require.Equal(t, "auth.example.com", u.Host)
	require.Equal(t, "/authorize", u.Path)
	q := u.Query()
	for k, want := range map[string]string{
		"response_type": "code", "client_id": "cid", "redirect_uri": r.RedirectURI, "scope": "repo,user",
		"state": r.State, "code_challenge": Challenge(r.Verifier), "code_challenge_method": "S256",
		"access_type": "offline", "tenant": "abc",
	} {
		require.Equal(t, []string{want}, q[k], k)
	}
	require.NotContains(t, raw, r.Verifier, "only the challenge is sent")
	require.NotContains(t, r.String(), r.State)
	require.NotContains(t, r.String(), r.Verifier)
}

func TestAuthCodeURLRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		mutP func(*Provider)
		mutR func(*AuthRequest)
	}{
		"reserved param":        {mutP: func(p *Provider) { p.AuthorizationParams = map[string]string{"state": "x"} }},
		"reserved in URL query": {mutP: func(p *Provider) { p.AuthorizationURL = "https://a.example.com/auth?redirect_uri=https://evil" }},
		"challenge in query":    {mutP: func(p *Provider) { p.AuthorizationURL = "https://a.example.com/auth?code_challenge_method=plain" }},
		"api_key provider":      {mutP: func(p *Provider) { p.AuthMode = AuthModeAPIKey }},
		"placeholder":           {mutP: func(p *Provider) { p.AuthorizationURL = "https://{shop}.example.com/auth" }},
		"short state":           {mutR: func(r *AuthRequest) { r.State = "abc" }},
		"short verifier":        {mutR: func(r *AuthRequest) { r.Verifier = strings.Repeat("a", 42) }},
		"no client id":          {mutR: func(r *AuthRequest) { r.ClientID = "" }},
	} {
		t.Run(name, func(t *testing.T) {
			p, r := testProvider(), testRequest(t)
			if tc.mutP != nil {
				tc.mutP(&p)
			}
			if tc.mutR != nil {
				tc.mutR(&r)
			}
			_, err := AuthCodeURL(p, r)
			require.Error(t, err)
		})
	}
}

func TestAuthCodeURLDefaultsToBasic(t *testing.T) {
	p := testProvider()
	p.TokenAuthMethod = ""
	_, err := AuthCodeURL(p, testRequest(t))
	require.NoError(t, err, "a custom provider without token_auth_method uses client_secret_basic")
}

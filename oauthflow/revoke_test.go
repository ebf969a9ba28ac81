package oauthflow

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault"
)

func TestRevokeAgainstFosite(t *testing.T) {
	for _, method := range []TokenAuthMethod{ClientSecretBasic, ClientSecretPost} {
		t.Run(string(method), func(t *testing.T) {
			ctx := context.Background()
			as := oauthtest.New(t, oauthtest.Options{AutoLogin: true, AuthMethod: string(method), RedirectURIs: []string{testRedirect}})
			p := fositeProvider(as, method)
			hc := tokenClient(t, "127.0.0.0/8")
			code, verifier := authorize(t, p, as)
			tok, err := Exchange(ctx, hc, p, creds(as), code, verifier, testRedirect, time.Now())
			require.NoError(t, err)
			require.True(t, as.Active(ctx, tok.AccessToken.Reveal()))

			require.NoError(t, Revoke(ctx, hc, p, creds(as), tok.AccessToken, HintAccessToken))
			require.False(t, as.Active(ctx, tok.AccessToken.Reveal()), "revoked at the provider")
			require.EqualValues(t, 1, as.RevokeCalls())

			require.NoError(t, Revoke(ctx, hc, p, creds(as), tok.RefreshToken, HintRefreshToken))
			conf := oauth2.Config{ClientID: as.ClientID(), ClientSecret: as.ClientSecret(),
				Endpoint: oauth2.Endpoint{TokenURL: as.TokenURL(), AuthStyle: oauth2.AuthStyleInHeader}}
			if method == ClientSecretPost {
				conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
			}
			_, err = conf.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, hc),
				&oauth2.Token{RefreshToken: tok.RefreshToken.Reveal(), Expiry: time.Now().Add(-time.Hour)}).Token()
			require.Error(t, err, "a revoked refresh token no longer refreshes")

			// A wrong client secret is refused with an RFC 6749 code only.
			bad := creds(as)
			bad.ClientSecret = vault.NewSecret("wrong-secret")
			err = Revoke(ctx, hc, p, bad, tok.AccessToken, HintAccessToken)
			var pe *ProviderError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, "invalid_client", pe.Code)
			require.NotContains(t, err.Error(), "wrong-secret")
		})
	}
}

func TestRevokeRefusals(t *testing.T) {
	ctx := context.Background()
	hc := tokenClient(t, "127.0.0.0/8")
	p := Provider{Name: "x", AuthMode: AuthModeOAuth2, AuthorizationURL: "https://a.example/auth", TokenURL: "https://a.example/token",
		TokenAuthMethod: ClientSecretBasic}
	require.ErrorIs(t, Revoke(ctx, hc, p, ClientCredentials{ClientID: "c"}, vault.NewSecret("t"), HintAccessToken), ErrRevocationUnsupported)

	hits := 0
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits++ }))
	defer target.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()
	p.RevocationURL = redirecting.URL
	err := Revoke(ctx, hc, p, ClientCredentials{ClientID: "c", ClientSecret: vault.NewSecret("s")}, vault.NewSecret("t"), HintAccessToken)
	var pe *ProviderError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, http.StatusTemporaryRedirect, pe.Status)
	require.Zero(t, hits, "a redirect is never followed")

	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()
	p.RevocationURL = unavailable.URL
	err = Revoke(ctx, hc, p, ClientCredentials{ClientID: "c", ClientSecret: vault.NewSecret("s")}, vault.NewSecret("t"), HintAccessToken)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, http.StatusServiceUnavailable, pe.Status, "the caller may retry a 503")
}

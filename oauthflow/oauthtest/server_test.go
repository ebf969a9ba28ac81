package oauthtest_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
)

const redirect = "http://127.0.0.1/cb"

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func conf(as *oauthtest.Server) *oauth2.Config {
	return &oauth2.Config{ClientID: as.ClientID(), ClientSecret: as.ClientSecret(), RedirectURL: redirect,
		Scopes: []string{"read"}, Endpoint: oauth2.Endpoint{AuthURL: as.AuthorizationURL(), TokenURL: as.TokenURL(),
			AuthStyle: oauth2.AuthStyleInHeader}}
}

func code(t *testing.T, authURL string) (*url.URL, int) {
	t.Helper()
	res, err := noRedirect().Get(authURL)
	require.NoError(t, err)
	res.Body.Close()
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	return loc, res.StatusCode
}

func TestPKCEIsEnforced(t *testing.T) {
	as := oauthtest.New(t, oauthtest.Options{AutoLogin: true, RedirectURIs: []string{redirect}})
	c := conf(as)
	loc, _ := code(t, c.AuthCodeURL("state-state-state"))
	require.Equal(t, "invalid_request", loc.Query().Get("error"), "no code_challenge: refused")

	v := oauth2.GenerateVerifier()
	loc, _ = code(t, c.AuthCodeURL("state-state-state", oauth2.SetAuthURLParam("code_challenge", v),
		oauth2.SetAuthURLParam("code_challenge_method", "plain")))
	require.NotEmpty(t, loc.Query().Get("error"), "plain is refused")
}

func TestIssOnAuthorizationResponse(t *testing.T) {
	as := oauthtest.New(t, oauthtest.Options{AutoLogin: true, RedirectURIs: []string{redirect}})
	c := conf(as)
	v := oauth2.GenerateVerifier()
	for mode, want := range map[oauthtest.IssMode]string{oauthtest.IssNone: "", oauthtest.IssCorrect: as.Issuer(),
		oauthtest.IssWrong: oauthtest.WrongIssuer} {
		as.SetIss(mode)
		loc, _ := code(t, c.AuthCodeURL("state-state-state", oauth2.S256ChallengeOption(v)))
		require.Equal(t, want, loc.Query().Get("iss"))
	}
}

func TestRefreshRotationWithReuseDetection(t *testing.T) {
	ctx := context.Background()
	as := oauthtest.New(t, oauthtest.Options{AutoLogin: true, RedirectURIs: []string{redirect}})
	c := conf(as)
	v := oauth2.GenerateVerifier()
	loc, _ := code(t, c.AuthCodeURL("state-state-state", oauth2.S256ChallengeOption(v)))
	tok, err := c.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
	require.NoError(t, err)

	refresh := func(rt string) (*oauth2.Token, error) {
		return c.TokenSource(ctx, &oauth2.Token{RefreshToken: rt, Expiry: time.Now().Add(-time.Hour)}).Token()
	}
	t2, err := refresh(tok.RefreshToken)
	require.NoError(t, err)
	require.NotEqual(t, tok.RefreshToken, t2.RefreshToken, "refresh tokens rotate")
	require.True(t, as.Active(ctx, t2.AccessToken))

	_, err = refresh(tok.RefreshToken)
	var re *oauth2.RetrieveError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "invalid_grant", re.ErrorCode, "a retired refresh token is refused")
	_, err = refresh(t2.RefreshToken)
	require.Error(t, err, "reuse revoked the whole grant, including the newest refresh token")
	require.False(t, as.Active(ctx, t2.AccessToken))

	// A second flow: replaying its code is refused and revokes what the code gave.
	loc, _ = code(t, c.AuthCodeURL("state-state-state", oauth2.S256ChallengeOption(v)))
	tok, err = c.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
	require.NoError(t, err)
	require.True(t, as.Active(ctx, tok.AccessToken))
	_, err = c.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
	require.ErrorAs(t, err, &re)
	require.Equal(t, "invalid_grant", re.ErrorCode, "codes are single use")
	require.False(t, as.Active(ctx, tok.AccessToken), "a replayed code revokes its tokens")
	require.EqualValues(t, 6, as.TokenCalls(), "two exchanges, three refreshes, one replay")
}

func TestLoginForm(t *testing.T) {
	as := oauthtest.New(t, oauthtest.Options{RedirectURIs: []string{redirect}})
	c := conf(as)
	v := oauth2.GenerateVerifier()
	authURL := c.AuthCodeURL("state-state-state", oauth2.S256ChallengeOption(v))
	res, err := noRedirect().Get(authURL)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, res.Header.Get("Content-Type"), "text/html")

	u, _ := url.Parse(authURL)
	post := func(user, pass string) *http.Response {
		res, err := noRedirect().PostForm(as.AuthorizationURL()+"?"+u.RawQuery, url.Values{"username": {user}, "password": {pass}})
		require.NoError(t, err)
		res.Body.Close()
		return res
	}
	require.Equal(t, http.StatusUnauthorized, post("alice", "nope").StatusCode)
	res = post("alice", "wonderland")
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	require.NotEmpty(t, loc.Query().Get("code"))
}

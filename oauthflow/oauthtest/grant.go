package oauthtest

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/oauth2"
)

// Grant runs the authorization code flow against the server directly (no proxy), as an
// application with its own OAuth client would have, and returns the tokens: a grant to
// import. The server must have AutoLogin and redirect among its RedirectURIs.
func (s *Server) Grant(t testing.TB, redirect string, scopes ...string) *oauth2.Token {
	t.Helper()
	style := oauth2.AuthStyleInHeader
	if s.opts.AuthMethod == "client_secret_post" {
		style = oauth2.AuthStyleInParams
	}
	c := &oauth2.Config{ClientID: s.opts.ClientID, ClientSecret: s.opts.ClientSecret, RedirectURL: redirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: s.AuthorizationURL(), TokenURL: s.TokenURL(), AuthStyle: style}}
	v := oauth2.GenerateVerifier()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := hc.Get(c.AuthCodeURL("state-of-a-direct-grant", oauth2.S256ChallengeOption(v)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("oauthtest: no code in the authorization response (%d, error=%q)", res.StatusCode, loc.Query().Get("error"))
	}
	tok, err := c.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

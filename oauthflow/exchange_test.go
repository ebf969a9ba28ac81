package oauthflow

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault"
)

const testRedirect = "http://127.0.0.1/callback"

// tokenClient is the production outbound client with loopback allowed (dev profile).
func tokenClient(t *testing.T, allow ...string) *http.Client {
	t.Helper()
	var prefixes []netip.Prefix
	for _, a := range allow {
		prefixes = append(prefixes, netip.MustParsePrefix(a))
	}
	c, err := outbound.New(outbound.Policy{AllowCIDRs: prefixes})
	require.NoError(t, err)
	return c.TokenClient()
}

func fositeProvider(as *oauthtest.Server, method TokenAuthMethod) Provider {
	return Provider{Name: "fosite", DisplayName: "Fosite", AuthMode: AuthModeOAuth2,
		AuthorizationURL: as.AuthorizationURL(), TokenURL: as.TokenURL(), RevocationURL: as.RevocationURL(),
		Issuer: as.Issuer(), TokenAuthMethod: method, PKCE: true}
}

// authorize runs the authorization request against an AutoLogin server and returns the
// code from the redirect.
func authorize(t *testing.T, p Provider, as *oauthtest.Server, scopes ...string) (code, verifier string) {
	t.Helper()
	state, _, err := NewState(testStateKID, testStateKey)
	require.NoError(t, err)
	verifier, err = NewVerifier()
	require.NoError(t, err)
	raw, err := AuthCodeURL(p, AuthRequest{ClientID: as.ClientID(), RedirectURI: testRedirect, Scopes: scopes,
		State: state, Verifier: verifier})
	require.NoError(t, err)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Get(raw)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, state, loc.Query().Get("state"))
	require.NotEmpty(t, loc.Query().Get("code"), "location: %s", loc.Redacted())
	return loc.Query().Get("code"), verifier
}

func creds(as *oauthtest.Server) ClientCredentials {
	return ClientCredentials{ClientID: as.ClientID(), ClientSecret: vault.NewSecret(as.ClientSecret())}
}

func TestExchangeAgainstFosite(t *testing.T) {
	for _, method := range []TokenAuthMethod{ClientSecretBasic, ClientSecretPost} {
		t.Run(string(method), func(t *testing.T) {
			as := oauthtest.New(t, oauthtest.Options{AutoLogin: true, AuthMethod: string(method),
				RedirectURIs: []string{testRedirect}, AccessTokenLifespan: 30 * time.Minute})
			p := fositeProvider(as, method)
			code, verifier := authorize(t, p, as, "read")
			now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			tok, err := Exchange(context.Background(), tokenClient(t, "127.0.0.0/8"), p, creds(as), code, verifier, testRedirect, now)
			require.NoError(t, err)
			require.True(t, as.Active(context.Background(), tok.AccessToken.Reveal()), "fosite accepts the token")
			require.False(t, tok.RefreshToken.IsZero())
			require.Equal(t, "Bearer", tok.TokenType)
			require.NotNil(t, tok.ExpiresAt)
			require.WithinDuration(t, now.Add(30*time.Minute), *tok.ExpiresAt, 5*time.Second, "expires_in counts from the injected clock")
			require.Equal(t, []string{"read"}, tok.Scopes)
			require.NotContains(t, tok.String(), tok.AccessToken.Reveal())

			form := as.LastTokenForm()
			require.Equal(t, []string{verifier}, form["code_verifier"])
			if method == ClientSecretBasic {
				require.Empty(t, form["client_secret"], "Basic: the secret is never in the body")
			} else {
				require.Equal(t, []string{as.ClientSecret()}, form["client_secret"])
			}

			// One-time codes: the same code again is refused, and the refusal is only a code.
			_, err = Exchange(context.Background(), tokenClient(t, "127.0.0.0/8"), p, creds(as), code, verifier, testRedirect, now)
			var pe *ProviderError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, "invalid_grant", pe.Code)
			require.Equal(t, http.StatusBadRequest, pe.Status)
		})
	}
}

func TestExchangeAuthMethodIsExplicit(t *testing.T) {
	// The server accepts only client_secret_post; a provider configured for Basic must fail
	// rather than have x/oauth2 retry with the secret in the body.
	as := oauthtest.New(t, oauthtest.Options{AutoLogin: true, AuthMethod: "client_secret_post", RedirectURIs: []string{testRedirect}})
	p := fositeProvider(as, ClientSecretBasic)
	code, verifier := authorize(t, p, as)
	before := as.TokenCalls()
	_, err := Exchange(context.Background(), tokenClient(t, "127.0.0.0/8"), p, creds(as), code, verifier, testRedirect, time.Now())
	var pe *ProviderError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "invalid_client", pe.Code)
	require.Equal(t, before+1, as.TokenCalls(), "exactly one token request: no auto-detect retry")
}

func TestExchangePKCEEnforced(t *testing.T) {
	as := oauthtest.New(t, oauthtest.Options{AutoLogin: true, RedirectURIs: []string{testRedirect}})
	p := fositeProvider(as, ClientSecretBasic)
	code, _ := authorize(t, p, as)
	other, err := NewVerifier()
	require.NoError(t, err)
	_, err = Exchange(context.Background(), tokenClient(t, "127.0.0.0/8"), p, creds(as), code, other, testRedirect, time.Now())
	var pe *ProviderError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "invalid_grant", pe.Code, "a wrong verifier is refused by the server")
}

func TestExchangeRefusals(t *testing.T) {
	as := oauthtest.New(t, oauthtest.Options{AutoLogin: true, RedirectURIs: []string{testRedirect}})
	p := fositeProvider(as, ClientSecretBasic)

	t.Run("redirect not followed", func(t *testing.T) {
		code, verifier := authorize(t, p, as)
		as.SetTokenRedirect(true)
		defer as.SetTokenRedirect(false)
		_, err := Exchange(context.Background(), tokenClient(t, "127.0.0.0/8"), p, creds(as), code, verifier, testRedirect, time.Now())
		var pe *ProviderError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, http.StatusTemporaryRedirect, pe.Status)
		require.Equal(t, ProviderErrorCode, pe.Code)
		require.Zero(t, as.RedirectHits(), "the redirect target was never called")
	})
	t.Run("private address refused at dial time", func(t *testing.T) {
		code, verifier := authorize(t, p, as)
		before := as.TokenCalls()
		_, err := Exchange(context.Background(), tokenClient(t), p, creds(as), code, verifier, testRedirect, time.Now())
		require.ErrorIs(t, err, outbound.ErrUnsafeURL)
		require.Equal(t, before, as.TokenCalls())
	})
	t.Run("provider body never in the error", func(t *testing.T) {
		const leak = "SENTINEL-body-echoes-client_secret=test-secret"
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"` + leak + `","error_description":"` + leak + `"}`))
		}))
		defer evil.Close()
		q := p
		q.TokenURL = evil.URL + "/token"
		v, _ := NewVerifier()
		_, err := Exchange(context.Background(), tokenClient(t, "127.0.0.0/8"), q, creds(as), "the-code-SENTINEL", v, testRedirect, time.Now())
		var pe *ProviderError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, ProviderErrorCode, pe.Code)
		for _, s := range []string{"SENTINEL", "test-secret", v} {
			require.NotContains(t, err.Error(), s)
		}
	})
	t.Run("malformed response", func(t *testing.T) {
		bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"token_type":"Bearer","SENTINEL":"x"}`))
		}))
		defer bad.Close()
		q := p
		q.TokenURL = bad.URL
		v, _ := NewVerifier()
		_, err := Exchange(context.Background(), tokenClient(t, "127.0.0.0/8"), q, creds(as), "c", v, testRedirect, time.Now())
		require.Error(t, err)
		require.False(t, strings.Contains(err.Error(), "SENTINEL"))
	})
}

func TestAssumedExpiry(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"at","token_type":"bearer"}`))
	}))
	defer srv.Close()
	p := Provider{Name: "x", AuthMode: AuthModeOAuth2, AuthorizationURL: srv.URL, TokenURL: srv.URL, TokenAuthMethod: ClientSecretPost}
	v, _ := NewVerifier()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cc := ClientCredentials{ClientID: "id", ClientSecret: vault.NewSecret("s")}
	tok, err := Exchange(context.Background(), tokenClient(t, "127.0.0.0/8"), p, cc, "c", v, testRedirect, now)
	require.NoError(t, err)
	require.Nil(t, tok.ExpiresAt, "no expires_in and no assumed_expires_in: does not expire")
	require.Equal(t, "Bearer", tok.TokenType)
	require.Nil(t, tok.Scopes)
	p.AssumedExpiresIn = 3600
	tok, err = Exchange(context.Background(), tokenClient(t, "127.0.0.0/8"), p, cc, "c", v, testRedirect, now)
	require.NoError(t, err)
	require.Equal(t, now.Add(time.Hour), *tok.ExpiresAt)
}

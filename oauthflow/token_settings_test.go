package oauthflow

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault"
)

// authorizeWith is authorize through hc (a TenantClient for a tenant-in-host server).
func authorizeWith(t *testing.T, hc *http.Client, p Provider, as *oauthtest.Server) (code, verifier string) {
	t.Helper()
	state, _, err := NewState(testStateKID, testStateKey)
	require.NoError(t, err)
	verifier, err = NewVerifier()
	require.NoError(t, err)
	raw, err := AuthCodeURL(p, AuthRequest{ClientID: as.ClientID(), RedirectURI: testRedirect, Scopes: []string{"read"},
		State: state, Verifier: verifier})
	require.NoError(t, err)
	res, err := hc.Get(raw)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	return loc.Query().Get("code"), verifier
}

// TestTenantInHostAgainstFosite: a template whose host is per tenant ({tenant}.idp.test,
// resolved to the fosite server by a test dialer, over TLS): the connection's values fill
// the URLs, the code exchange and the refresh go to that tenant's host, the client secret
// (bound to the origin pattern) may go there and nowhere else, and the tokens are bound to
// the filled origins.
func TestTenantInHostAgainstFosite(t *testing.T) {
	as := oauthtest.New(t, oauthtest.Options{AutoLogin: true, TLS: true, RedirectURIs: []string{testRedirect}})
	base := "https://{tenant}.idp.test:" + as.Port()
	tmpl := Provider{Name: "tenanted", DisplayName: "Tenanted", AuthMode: AuthModeOAuth2, TokenAuthMethod: ClientSecretBasic,
		AuthorizationURL: base + "/authorize", TokenURL: base + "/token", RevocationURL: base + "/revoke",
		APIBaseURL: base + "/api", ConnectionConfig: []ConfigParam{{Name: "tenant", Pattern: "[a-z0-9-]{1,40}"}}}
	require.NoError(t, tmpl.Validate())
	require.True(t, tmpl.NeedsConnectionConfig())

	for _, bad := range []map[string]string{nil, {"tenant": "evil.example"}, {"tenant": "acme", "x": "y"}, {"tenant": "ACME"}} {
		_, err := tmpl.Expand(bad)
		require.ErrorIs(t, err, problem.ErrInvalidConnectionConfig, "%v", bad)
	}
	p, err := tmpl.Expand(map[string]string{"tenant": "acme"})
	require.NoError(t, err)
	require.Equal(t, "https://acme.idp.test:"+as.Port()+"/token", p.TokenURL)

	// The client secret's binding is the pattern: every tenant's token endpoint, no other.
	secretOrigins := tmpl.ClientSecretOrigins()
	require.Equal(t, vault.Origins{"https://{}.idp.test:" + as.Port()}, secretOrigins)
	use := vault.Use{WorkspaceID: "ws", Purpose: vault.UseCodeExchange}
	require.NoError(t, vault.CheckOrigin(context.Background(), nil, use, p.TokenURL, secretOrigins, p.VerifierOrigins()))
	for _, elsewhere := range []string{"https://acme.evil.test:" + as.Port() + "/token", "https://a.b.idp.test:" + as.Port() + "/token",
		"https://acme.idp.test/token", "http://acme.idp.test:" + as.Port() + "/token"} {
		require.ErrorIs(t, vault.CheckOrigin(context.Background(), nil, use, elsewhere, secretOrigins), vault.ErrOriginNotBound, elsewhere)
	}
	require.Equal(t, vault.Origins{"https://acme.idp.test:" + as.Port()}, p.AccessTokenOrigins(), "tokens are bound to the filled origins")

	hc := as.TenantClient("idp.test")
	code, verifier := authorizeWith(t, hc, p, as)
	now := time.Now()
	tok, err := Exchange(context.Background(), hc, p, creds(as), code, verifier, testRedirect, now)
	require.NoError(t, err)
	require.Equal(t, "acme.idp.test:"+as.Port(), as.LastTokenHost(), "the exchange went to the tenant's host")
	require.True(t, as.Active(context.Background(), tok.AccessToken.Reveal()))

	other, err := tmpl.Expand(map[string]string{"tenant": "globex"})
	require.NoError(t, err)
	next, err := Refresh(context.Background(), hc, other, creds(as), tok.RefreshToken, now)
	require.NoError(t, err, "fosite has one client for all tenants")
	require.Equal(t, "globex.idp.test:"+as.Port(), as.LastTokenHost(), "the refresh goes to the connection's filled URL")
	require.False(t, next.AccessToken.IsZero())
}

// TestTokenParamsAskForExpiry: a provider that omits expires_in unless asked. Without
// token_params the token looks eternal (and would never refresh); with them the exchange
// and (refresh_params) the refresh learn the expiry.
func TestTokenParamsAskForExpiry(t *testing.T) {
	as := oauthtest.New(t, oauthtest.Options{AutoLogin: true, RedirectURIs: []string{testRedirect}, ExpiresInParam: "expiring"})
	hc, now := tokenClient(t, "127.0.0.0/8"), time.Now()
	p := fositeProvider(as, ClientSecretBasic)
	code, verifier := authorize(t, p, as, "read")
	tok, err := Exchange(context.Background(), hc, p, creds(as), code, verifier, testRedirect, now)
	require.NoError(t, err)
	require.Nil(t, tok.ExpiresAt, "not asked: no expires_in")

	p.TokenParams = map[string]string{"expiring": "true"}
	p.RefreshParams = map[string]string{"expiring": "true"}
	require.NoError(t, p.ValidateSettings())
	code, verifier = authorize(t, p, as, "read")
	tok, err = Exchange(context.Background(), hc, p, creds(as), code, verifier, testRedirect, now)
	require.NoError(t, err)
	require.NotNil(t, tok.ExpiresAt)
	require.Equal(t, []string{"true"}, as.LastTokenForm()["expiring"])
	next, err := Refresh(context.Background(), hc, p, creds(as), tok.RefreshToken, now)
	require.NoError(t, err)
	require.NotNil(t, next.ExpiresAt, "refresh_params ask again")
	require.Equal(t, []string{"refresh_token"}, as.LastTokenForm()["grant_type"])

	for _, reserved := range []string{"grant_type", "code", "redirect_uri", "client_secret", "refresh_token", "code_verifier"} {
		q := p.Clone()
		q.TokenParams = map[string]string{reserved: "x"}
		require.ErrorContains(t, q.ValidateSettings(), "set by the request", reserved)
	}
}

// TestInstanceURLMetadata: a provider that returns instance_url (Salesforce): it is kept
// as metadata, becomes the connection's API base and bound origin, and a value outside
// the field's declared origins refuses the whole response.
func TestInstanceURLMetadata(t *testing.T) {
	for _, tc := range []struct {
		instance string
		ok       bool
	}{{"https://acme.my.salesforce.com", true}, {"https://acme.my.salesforce.com.evil.example", false},
		{"http://acme.my.salesforce.com", false}, {"https://user@acme.my.salesforce.com", false}} {
		t.Run(tc.instance, func(t *testing.T) {
			as := oauthtest.New(t, oauthtest.Options{AutoLogin: true, RedirectURIs: []string{testRedirect}, InstanceURL: tc.instance})
			p := fositeProvider(as, ClientSecretBasic)
			p.MetadataFields = []MetadataField{{Name: "instance_url", Origins: []string{"https://{instance}.my.salesforce.com"}, APIBase: true}}
			require.NoError(t, p.ValidateSettings())
			code, verifier := authorize(t, p, as, "read")
			tok, err := Exchange(context.Background(), tokenClient(t, "127.0.0.0/8"), p, creds(as), code, verifier, testRedirect, time.Now())
			if !tc.ok {
				require.ErrorIs(t, err, ErrMalformedTokenResponse)
				require.NotContains(t, err.Error(), "salesforce")
				return
			}
			require.NoError(t, err)
			require.Equal(t, map[string]string{"instance_url": tc.instance}, tok.Metadata)
			cp, err := p.ForConnection(nil, tok.Metadata)
			require.NoError(t, err)
			require.Equal(t, tc.instance, cp.APIBaseURL)
			require.True(t, cp.AccessTokenOrigins().Contains("https://acme.my.salesforce.com:443"), "bound to the instance")
			_, err = p.ForConnection(nil, map[string]string{"instance_url": "https://evil.example"})
			require.Error(t, err, "a stored value outside the origins is never an API base")
		})
	}
}

// TestJSONTokenRequests: a provider that takes only JSON bodies (Notion, Atlassian) with
// either client authentication; a form body is refused by it.
func TestJSONTokenRequests(t *testing.T) {
	for _, method := range []TokenAuthMethod{ClientSecretBasic, ClientSecretPost} {
		t.Run(string(method), func(t *testing.T) {
			as := oauthtest.New(t, oauthtest.Options{AutoLogin: true, AuthMethod: string(method), RedirectURIs: []string{testRedirect}, JSONBody: true})
			hc, p := tokenClient(t, "127.0.0.0/8"), fositeProvider(as, method)
			code, verifier := authorize(t, p, as, "read")
			_, err := Exchange(context.Background(), hc, p, creds(as), code, verifier, testRedirect, time.Now())
			var pe *ProviderError
			require.ErrorAs(t, err, &pe, "a form body is refused")
			require.Equal(t, "invalid_request", pe.Code)

			p.TokenRequestFormat = FormatJSON
			tok, err := Exchange(context.Background(), hc, p, creds(as), code, verifier, testRedirect, time.Now())
			require.NoError(t, err)
			require.Equal(t, []string{"authorization_code"}, as.LastTokenForm()["grant_type"])
			_, err = Refresh(context.Background(), hc, p, creds(as), tok.RefreshToken, time.Now())
			require.NoError(t, err)
		})
	}
}

// TestTokenResponseFields: Slack's user tokens live under authed_user; a 200 with
// {"ok":false,"error":...} is a refusal; the team id is kept as metadata.
func TestTokenResponseFields(t *testing.T) {
	body := `{"ok":true,"access_token":"xoxb-bot","team":{"id":"T123"},"authed_user":{"id":"U1","scope":"search:read,chat:write","access_token":"xoxp-user","refresh_token":"xoxe-1","expires_in":43200,"token_type":"user"}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	p := Provider{Name: "slacky", DisplayName: "S", AuthMode: AuthModeOAuth2, AuthorizationURL: "https://slack.example/a",
		TokenURL: srv.URL + "/token", TokenAuthMethod: ClientSecretPost,
		TokenResponseFields: map[string]string{"access_token": "authed_user.access_token", "refresh_token": "authed_user.refresh_token",
			"expires_in": "authed_user.expires_in", "scope": "authed_user.scope", "token_type": "authed_user.token_type"},
		MetadataFields: []MetadataField{{Name: "team_id", Path: "team.id"}, {Name: "user_id", Path: "authed_user.id"}}}
	require.NoError(t, p.ValidateSettings())
	now := time.Now()
	tok, err := Refresh(context.Background(), tokenClient(t, "127.0.0.0/8"), p, ClientCredentials{ClientID: "c", ClientSecret: vault.NewSecret("s")},
		vault.NewSecret("old"), now)
	require.NoError(t, err)
	require.Equal(t, "xoxp-user", tok.AccessToken.Reveal())
	require.Equal(t, "xoxe-1", tok.RefreshToken.Reveal())
	require.Equal(t, []string{"search:read", "chat:write"}, tok.Scopes)
	require.WithinDuration(t, now.Add(12*time.Hour), *tok.ExpiresAt, time.Second)
	require.Equal(t, map[string]string{"team_id": "T123", "user_id": "U1"}, tok.Metadata)
	v, ok := tok.Field("authed_user.expires_in")
	require.True(t, ok)
	require.EqualValues(t, "43200", v.(interface{ String() string }).String())

	body = `{"ok":false,"error":"invalid_grant"}`
	_, err = Refresh(context.Background(), tokenClient(t, "127.0.0.0/8"), p, ClientCredentials{ClientID: "c"}, vault.NewSecret("old"), now)
	var pe *ProviderError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "invalid_grant", pe.Code)
	body = `{"ok":true}`
	_, err = Refresh(context.Background(), tokenClient(t, "127.0.0.0/8"), p, ClientCredentials{ClientID: "c"}, vault.NewSecret("old"), now)
	require.True(t, errors.Is(err, ErrMalformedTokenResponse))
}

// Package oauthtest is a strict OAuth 2.0 authorization server for tests, built on
// github.com/ory/fosite: authorization code grant (RFC 6749 section 4.1) with PKCE
// enforced and S256 only (RFC 7636), one-time authorization codes, refresh tokens that
// rotate with reuse detection (RFC 9700 section 4.14.2: presenting a retired refresh
// token revokes the whole grant), token revocation (RFC 7009), introspection (RFC 7662)
// and an optional iss parameter on the authorization response (RFC 9207). The client must
// authenticate with exactly its configured method (client_secret_basic or _post).
//
// For the browser test, the authorization endpoint shows an HTML login form; with
// AutoLogin it consents at once for the test user. Counters record every call of the
// token and revocation endpoints, and the token endpoint can be made to answer with a
// 307 redirect (to prove that the client does not follow it).
package oauthtest

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/storage"
	"golang.org/x/crypto/bcrypt"
)

// Options configure a Server. Zero values get the defaults documented per field.
type Options struct {
	ClientID     string // default "test-client"
	ClientSecret string // default "test-secret"
	// AuthMethod is client_secret_basic (default) or client_secret_post; the other is refused.
	AuthMethod string
	// RedirectURIs are the registered redirect URIs (exact match; any port on loopback).
	RedirectURIs []string
	// Scopes the client may ask for (default "read", "write").
	Scopes []string
	// Username and Password of the login form (default "alice" / "wonderland").
	Username, Password string
	// AutoLogin consents at once for Username, without the form.
	AutoLogin bool
	// AccessTokenLifespan defaults to one hour.
	AccessTokenLifespan time.Duration
	// RefreshTokenExpiresIn, when set, is sent as refresh_token_expires_in (seconds) with
	// every token response that carries a refresh token; RefreshTokenExpiresField renames
	// that field (x_refresh_token_expires_in, as Intuit does).
	RefreshTokenExpiresIn    int64
	RefreshTokenExpiresField string

	// Shapes of real providers (issue 19's per-connection settings):

	// TLS serves https (httptest's certificate, for example.com); with TenantClient a
	// test reaches it under any host name, e.g. {tenant}.idp.test.
	TLS bool
	// TenantPaths serves every endpoint under a first path segment too
	// (/acme/token, /acme/authorize, /acme/api/me): the tenant, which LastTenant records.
	TenantPaths bool
	// JSONBody: the token endpoint takes only application/json bodies (Notion,
	// Atlassian); a form body is 400 invalid_request.
	JSONBody bool
	// ExpiresInParam: token responses omit expires_in unless the token request carries
	// this parameter (a provider whose tokens expire but that says so only when asked).
	ExpiresInParam string
	// InstanceURL is added to every token response as instance_url (Salesforce).
	InstanceURL string
}

// IssMode says what the authorization response carries as iss (RFC 9207).
type IssMode int

// Iss modes.
const (
	IssNone    IssMode = iota // no iss parameter
	IssCorrect                // iss = Issuer()
	IssWrong                  // iss = WrongIssuer (a mix-up attacker's)
)

// WrongIssuer is the iss that IssWrong sends.
const WrongIssuer = "https://attacker.example"

// Server is a running authorization server.
type Server struct {
	URL string

	opts     Options
	provider fosite.OAuth2Provider
	store    *storage.MemoryStore
	http     *httptest.Server
	client   *rotatingClient

	issMode       atomic.Int32
	tokenRedirect atomic.Bool
	tokenCalls    atomic.Int64
	revokeCalls   atomic.Int64
	redirectHits  atomic.Int64
	authorizeHits atomic.Int64

	mu         sync.Mutex
	lastForm   map[string][]string // the last token request's form, for assertions
	lastHost   string              // the Host of the last token request
	lastTenant string              // the tenant segment of the last request (TenantPaths)
}

// New starts a server; it is closed when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID = "test-client"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "test-secret"
	}
	if opts.AuthMethod == "" {
		opts.AuthMethod = "client_secret_basic"
	}
	if len(opts.Scopes) == 0 {
		opts.Scopes = []string{"read", "write"}
	}
	if opts.Username == "" {
		opts.Username, opts.Password = "alice", "wonderland"
	}
	if opts.AccessTokenLifespan == 0 {
		opts.AccessTokenLifespan = time.Hour
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(opts.ClientSecret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{opts: opts, store: storage.NewMemoryStore()}
	s.client = &rotatingClient{DefaultOpenIDConnectClient: &fosite.DefaultOpenIDConnectClient{
		DefaultClient: &fosite.DefaultClient{
			ID: opts.ClientID, Secret: hash, RedirectURIs: opts.RedirectURIs,
			ResponseTypes: []string{"code"}, GrantTypes: []string{"authorization_code", "refresh_token"},
			Scopes: opts.Scopes,
		},
		TokenEndpointAuthMethod: opts.AuthMethod,
	}}
	s.client.hash.Store(&hash)
	s.store.Clients[opts.ClientID] = s.client
	mux := http.NewServeMux()
	s.http = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.routeTenant(r)
		mux.ServeHTTP(w, r)
	}))
	if opts.TLS {
		s.http.StartTLS()
	} else {
		s.http.Start()
	}
	t.Cleanup(s.http.Close)
	s.URL = s.http.URL

	cfg := &fosite.Config{
		AccessTokenLifespan:            opts.AccessTokenLifespan,
		AuthorizeCodeLifespan:          5 * time.Minute,
		RefreshTokenLifespan:           24 * time.Hour,
		GlobalSecret:                   secret,
		EnforcePKCE:                    true,
		EnablePKCEPlainChallengeMethod: false,
		RefreshTokenScopes:             []string{}, // every code exchange gets a refresh token
		TokenURL:                       s.URL + "/token",
		SendDebugMessagesToClients:     false,
	}
	s.provider = compose.Compose(cfg, s.store, compose.NewOAuth2HMACStrategy(cfg),
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2PKCEFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	)
	mux.HandleFunc("/authorize", s.authorize)
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("/revoke", s.revoke)
	mux.HandleFunc("/redirected", func(w http.ResponseWriter, _ *http.Request) {
		s.redirectHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"from-the-redirect-target","token_type":"Bearer"}`))
	})
	mux.HandleFunc("/api/me", s.me)
	return s
}

// Issuer is the server's issuer identifier: its URL.
func (s *Server) Issuer() string { return s.URL }

// AuthorizationURL, TokenURL and RevocationURL are the endpoints.
func (s *Server) AuthorizationURL() string { return s.URL + "/authorize" }

// TokenURL is the token endpoint.
func (s *Server) TokenURL() string { return s.URL + "/token" }

// RevocationURL is the RFC 7009 endpoint.
func (s *Server) RevocationURL() string { return s.URL + "/revoke" }

// APIURL is a protected resource: GET with a valid access token answers 200 and
// {"sub":...,"scope":...}; anything else 401.
func (s *Server) APIURL() string { return s.URL + "/api/me" }

// ClientID and ClientSecret are the registered client's credentials.
func (s *Server) ClientID() string { return s.opts.ClientID }

// ClientSecret is the registered client's secret.
func (s *Server) ClientSecret() string { return s.opts.ClientSecret }

// SetIss chooses what the authorization response carries as iss.
func (s *Server) SetIss(m IssMode) { s.issMode.Store(int32(m)) }

// SetTokenRedirect makes the token endpoint answer 307 to RedirectTarget.
func (s *Server) SetTokenRedirect(on bool) { s.tokenRedirect.Store(on) }

// RedirectTarget is where a redirecting token endpoint points; RedirectHits counts its calls.
func (s *Server) RedirectTarget() string { return s.URL + "/redirected" }

// TokenCalls counts requests to the token endpoint (including refused ones).
func (s *Server) TokenCalls() int64 { return s.tokenCalls.Load() }

// RevokeCalls counts requests to the revocation endpoint.
func (s *Server) RevokeCalls() int64 { return s.revokeCalls.Load() }

// RedirectHits counts requests to RedirectTarget.
func (s *Server) RedirectHits() int64 { return s.redirectHits.Load() }

// AuthorizeHits counts requests to the authorization endpoint.
func (s *Server) AuthorizeHits() int64 { return s.authorizeHits.Load() }

// LastTokenForm returns the form of the last token request (for assertions on what the
// client sent, e.g. code_verifier present, no client_secret in the body for Basic).
func (s *Server) LastTokenForm() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastForm
}

// Active reports whether token is a valid, unrevoked access token of this server.
func (s *Server) Active(ctx context.Context, token string) bool {
	_, _, err := s.provider.IntrospectToken(ctx, token, fosite.AccessToken, new(fosite.DefaultSession))
	return err == nil
}

// RefreshActive reports whether token is a valid, unrevoked refresh token of this server
// (introspection, RFC 7662).
func (s *Server) RefreshActive(ctx context.Context, token string) bool {
	use, _, err := s.provider.IntrospectToken(ctx, token, fosite.RefreshToken, new(fosite.DefaultSession))
	return err == nil && use == fosite.RefreshToken
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html><head><title>Test provider: sign in</title></head><body>
<h1>Sign in to the test provider</h1>
{{if .Failed}}<p id="error">Wrong user name or password.</p>{{end}}
<form method="post" action="/authorize?{{.Query}}">
<label>User <input id="username" name="username" autocomplete="off"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="login" type="submit">Sign in and allow</button>
</form></body></html>`))

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	s.authorizeHits.Add(1)
	ctx := r.Context()
	if !s.opts.AutoLogin {
		if r.Method != http.MethodPost {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_ = loginPage.Execute(w, map[string]any{"Query": template.URL(r.URL.RawQuery)}) //nolint:gosec // the test's own query
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		userOK := subtle.ConstantTimeCompare([]byte(r.PostForm.Get("username")), []byte(s.opts.Username)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(r.PostForm.Get("password")), []byte(s.opts.Password)) == 1
		if !userOK || !passOK {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			_ = loginPage.Execute(w, map[string]any{"Query": template.URL(r.URL.RawQuery), "Failed": true}) //nolint:gosec
			return
		}
	}
	ar, err := s.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	for _, sc := range ar.GetRequestedScopes() {
		ar.GrantScope(sc)
	}
	sess := &fosite.DefaultSession{Subject: s.opts.Username, Username: s.opts.Username}
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	switch IssMode(s.issMode.Load()) {
	case IssCorrect:
		resp.AddParameter("iss", s.Issuer())
	case IssWrong:
		resp.AddParameter("iss", WrongIssuer)
	}
	s.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.tokenCalls.Add(1)
	if s.tokenRedirect.Load() {
		http.Redirect(w, r, s.RedirectTarget(), http.StatusTemporaryRedirect)
		return
	}
	ctx := r.Context()
	if !s.jsonToForm(w, r) {
		return
	}
	if err := r.ParseForm(); err == nil {
		s.mu.Lock()
		s.lastForm, s.lastHost = r.PostForm, r.Host
		s.mu.Unlock()
	}
	ar, err := s.provider.NewAccessRequest(ctx, r, new(fosite.DefaultSession))
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	if n := s.opts.RefreshTokenExpiresIn; n > 0 && resp.GetExtra("refresh_token") != nil {
		name := s.opts.RefreshTokenExpiresField
		if name == "" {
			name = "refresh_token_expires_in"
		}
		resp.SetExtra(name, n)
	}
	if s.opts.ExpiresInParam == "" && s.opts.InstanceURL == "" {
		s.provider.WriteAccessResponse(ctx, w, ar, resp)
		return
	}
	rec := httptest.NewRecorder()
	s.provider.WriteAccessResponse(ctx, rec, ar, resp)
	var body map[string]any
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if s.opts.ExpiresInParam != "" && r.PostForm.Get(s.opts.ExpiresInParam) == "" {
		delete(body, "expires_in")
	}
	if s.opts.InstanceURL != "" {
		body["instance_url"] = s.opts.InstanceURL
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(body)
}

// rotatingClient is the registered client with a secret that SetClientSecret replaces
// while the server runs (an OAuth app's secret rotation).
type rotatingClient struct {
	*fosite.DefaultOpenIDConnectClient
	hash atomic.Pointer[[]byte]
}

func (c *rotatingClient) GetHashedSecret() []byte { return *c.hash.Load() }

// SetClientSecret makes secret the client's only valid secret from now on: the old one
// gets invalid_client, as after an OAuth app's secret rotation at a provider.
func (s *Server) SetClientSecret(secret string) {
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	s.client.hash.Store(&hash)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	s.revokeCalls.Add(1)
	ctx := r.Context()
	s.provider.WriteRevocationResponse(ctx, w, s.provider.NewRevocationRequest(ctx, r))
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	_, ar, err := s.provider.IntrospectToken(r.Context(), tok, fosite.AccessToken, new(fosite.DefaultSession))
	if err != nil || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"sub": ar.GetSession().GetSubject(), "scope": strings.Join(ar.GetGrantedScopes(), " ")})
}

// jsonToForm applies JSONBody: a JSON token request becomes the form fosite reads; a form
// one is refused. It reports whether to go on.
func (s *Server) jsonToForm(w http.ResponseWriter, r *http.Request) bool {
	if !s.opts.JSONBody {
		return true
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var in map[string]string
	if mt != "application/json" || json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in) != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_request"}`))
		return false
	}
	form := url.Values{}
	for k, v := range in {
		form.Set(k, v)
	}
	r.Body = io.NopCloser(strings.NewReader(form.Encode()))
	r.ContentLength = int64(len(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return true
}

// routeTenant applies TenantPaths: /{tenant}/token is served as /token, the tenant kept.
func (s *Server) routeTenant(r *http.Request) {
	if !s.opts.TenantPaths {
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/")
	tenant, path, ok := strings.Cut(rest, "/")
	if !ok || tenant == "" {
		return
	}
	switch path {
	case "authorize", "token", "revoke", "api/me":
		s.mu.Lock()
		s.lastTenant = tenant
		s.mu.Unlock()
		r.URL.Path, r.URL.RawPath = "/"+path, ""
	}
}

// LastTokenHost is the Host header of the last token request (a tenant-in-host provider).
func (s *Server) LastTokenHost() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastHost
}

// LastTenant is the tenant path segment of the last request under TenantPaths.
func (s *Server) LastTenant() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastTenant
}

// TenantClient is an HTTP client that reaches this (TLS) server under any host name of
// domain (a test resolver: acme.idp.test is dialled at the server's address), verifies
// its certificate (httptest's, issued for example.com) and follows no redirect; any
// other host fails to dial.
func (s *Server) TenantClient(domain string) *http.Client {
	addr := s.http.Listener.Addr().String()
	tr := s.http.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.ServerName = "example.com"
	tr.DialContext = func(ctx context.Context, network, hostport string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(hostport)
		if err != nil || !strings.HasSuffix(host, "."+domain) {
			return nil, fmt.Errorf("oauthtest: no such host %q", hostport)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Port is the server's TCP port.
func (s *Server) Port() string {
	_, port, _ := net.SplitHostPort(s.http.Listener.Addr().String())
	return port
}

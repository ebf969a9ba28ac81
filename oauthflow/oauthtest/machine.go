package oauthtest

import (
	"context"
	"crypto"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/storage"
	"golang.org/x/crypto/bcrypt"
)

// MachineServer is a strict authorization server for machine grants, on fosite: the
// client credentials grant (RFC 6749 section 4.4) with client_secret_basic,
// client_secret_post or private_key_jwt client authentication (RFC 7523 section 2.2: the
// client's JWKS, iss = sub = client_id, aud = the token URL, a jti used once, exp
// checked), and the JWT bearer grant (RFC 7523 section 2.1) from trusted issuers (their
// public keys, aud = the token URL, exp at most a day after iat, a jti used once),
// optionally without client authentication (Google's service accounts). Each client must
// authenticate with exactly its registered method. Token requests are served one at a
// time (fosite's memory store is not safe for concurrent grants in every path), and every
// successful token response is counted (Mints): what "exactly one mint" tests read.
type MachineServer struct {
	URL string

	opts     MachineOptions
	store    *storage.MemoryStore
	provider fosite.OAuth2Provider
	http     *httptest.Server

	serial  sync.Mutex // one token request at a time
	calls   atomic.Int64
	mints   atomic.Int64
	mu      sync.Mutex
	clients map[string]*fosite.DefaultOpenIDConnectClient
	last    map[string][]string
	lastHdr http.Header
}

// MachineClient is a registered client of a MachineServer.
type MachineClient struct {
	ID string
	// Secret authenticates client_secret_basic and client_secret_post clients.
	Secret string
	// AuthMethod: client_secret_basic (default), client_secret_post or private_key_jwt.
	AuthMethod string
	// PublicKey (with KeyID, optional) is a private_key_jwt client's key, served as its
	// JWKS; Alg is its signing algorithm (default RS256).
	PublicKey crypto.PublicKey
	KeyID     string
	Alg       string
}

// TrustedIssuer is an issuer whose jwt-bearer assertions the server accepts: its public
// key (KeyID optional), for assertions with that subject, which may ask for Scopes.
type TrustedIssuer struct {
	Issuer, Subject string
	PublicKey       crypto.PublicKey
	KeyID           string
	Scopes          []string
}

// MachineOptions configure a MachineServer.
type MachineOptions struct {
	Clients []MachineClient
	Issuers []TrustedIssuer
	// Scopes every client may ask for (default "read", "write").
	Scopes []string
	// AnonymousJWTBearer accepts jwt-bearer grants without client authentication.
	AnonymousJWTBearer bool
	// AccessTokenLifespan defaults to one hour.
	AccessTokenLifespan time.Duration
	// Configure, when set, adjusts fosite's configuration before the provider is composed
	// (another client authentication, e.g. mTLS).
	Configure func(*fosite.Config)
}

// NewMachine starts a machine-grant server; it is closed when the test ends.
func NewMachine(t testing.TB, opts MachineOptions) *MachineServer {
	t.Helper()
	if len(opts.Scopes) == 0 {
		opts.Scopes = []string{"read", "write"}
	}
	if opts.AccessTokenLifespan == 0 {
		opts.AccessTokenLifespan = time.Hour
	}
	s := &MachineServer{opts: opts, store: storage.NewMemoryStore(), clients: map[string]*fosite.DefaultOpenIDConnectClient{}}
	mux := http.NewServeMux()
	s.http = httptest.NewServer(mux)
	t.Cleanup(s.http.Close)
	s.URL = s.http.URL
	for _, c := range opts.Clients {
		s.AddClient(t, c)
	}
	for _, iss := range opts.Issuers {
		s.TrustIssuer(iss)
	}
	secret := make([]byte, 32)
	copy(secret, "machine-grant-test-server-global")
	cfg := &fosite.Config{
		AccessTokenLifespan:                 opts.AccessTokenLifespan,
		GlobalSecret:                        secret,
		TokenURL:                            s.TokenURL(),
		GrantTypeJWTBearerCanSkipClientAuth: opts.AnonymousJWTBearer,
		GrantTypeJWTBearerMaxDuration:       24 * time.Hour,
		SendDebugMessagesToClients:          false,
	}
	if opts.Configure != nil {
		opts.Configure(cfg)
	}
	s.provider = compose.Compose(cfg, s.store, compose.NewOAuth2HMACStrategy(cfg),
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.RFC7523AssertionGrantFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	)
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("/revoke", func(w http.ResponseWriter, r *http.Request) {
		s.provider.WriteRevocationResponse(r.Context(), w, s.provider.NewRevocationRequest(r.Context(), r))
	})
	mux.HandleFunc("/api/me", s.me)
	return s
}

// TokenURL is the token endpoint (the aud every assertion must carry).
func (s *MachineServer) TokenURL() string { return s.URL + "/token" }

// RevocationURL is the RFC 7009 endpoint (client authenticated as at the token endpoint).
func (s *MachineServer) RevocationURL() string { return s.URL + "/revoke" }

// APIURL is a protected resource: 200 {"sub","scope"} for a valid access token, else 401.
func (s *MachineServer) APIURL() string { return s.URL + "/api/me" }

// TokenCalls counts token requests (refused ones included); Mints the successful ones.
func (s *MachineServer) TokenCalls() int64 { return s.calls.Load() }

// Mints counts the token responses that issued an access token.
func (s *MachineServer) Mints() int64 { return s.mints.Load() }

// LastTokenForm is the form of the last token request; LastTokenHeader its headers.
func (s *MachineServer) LastTokenForm() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// LastTokenHeader is the header of the last token request.
func (s *MachineServer) LastTokenHeader() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastHdr
}

// AddClient registers (or replaces) a client.
func (s *MachineServer) AddClient(t testing.TB, c MachineClient) {
	t.Helper()
	if c.AuthMethod == "" {
		c.AuthMethod = "client_secret_basic"
	}
	if c.Alg == "" {
		c.Alg = "RS256"
	}
	fc := &fosite.DefaultOpenIDConnectClient{
		DefaultClient: &fosite.DefaultClient{ID: c.ID, GrantTypes: []string{"client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
			ResponseTypes: []string{"token"}, Scopes: s.opts.Scopes},
		TokenEndpointAuthMethod: c.AuthMethod,
	}
	if c.Secret != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(c.Secret), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fc.Secret = hash
	}
	if c.PublicKey != nil {
		fc.JSONWebKeys = &josev3.JSONWebKeySet{Keys: []josev3.JSONWebKey{{Key: c.PublicKey, KeyID: c.KeyID, Algorithm: c.Alg, Use: "sig"}}}
		fc.TokenEndpointAuthSigningAlgorithm = c.Alg
	}
	s.mu.Lock()
	s.clients[c.ID] = fc
	s.mu.Unlock()
	s.serial.Lock()
	s.store.Clients[c.ID] = fc
	s.serial.Unlock()
}

// SetClientSecret replaces a client's secret: the old one gets invalid_client.
func (s *MachineServer) SetClientSecret(t testing.TB, id, secret string) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s.serial.Lock()
	defer s.serial.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[id]; ok {
		c.Secret = hash
	}
}

// TrustIssuer accepts jwt-bearer assertions of iss.
func (s *MachineServer) TrustIssuer(iss TrustedIssuer) {
	if len(iss.Scopes) == 0 {
		iss.Scopes = s.opts.Scopes
	}
	s.serial.Lock()
	defer s.serial.Unlock()
	ik, ok := s.store.IssuerPublicKeys[iss.Issuer]
	if !ok {
		ik = storage.IssuerPublicKeys{Issuer: iss.Issuer, KeysBySub: map[string]storage.SubjectPublicKeys{}}
	}
	sk, ok := ik.KeysBySub[iss.Subject]
	if !ok {
		sk = storage.SubjectPublicKeys{Subject: iss.Subject, Keys: map[string]storage.PublicKeyScopes{}}
	}
	sk.Keys[iss.KeyID] = storage.PublicKeyScopes{Key: &josev3.JSONWebKey{Key: iss.PublicKey, KeyID: iss.KeyID, Use: "sig"}, Scopes: iss.Scopes}
	ik.KeysBySub[iss.Subject] = sk
	s.store.IssuerPublicKeys[iss.Issuer] = ik
}

// DistrustIssuer forgets every key of iss: its assertions get invalid_grant.
func (s *MachineServer) DistrustIssuer(iss string) {
	s.serial.Lock()
	defer s.serial.Unlock()
	delete(s.store.IssuerPublicKeys, iss)
}

// Active reports whether token is a valid access token of this server.
func (s *MachineServer) Active(ctx context.Context, token string) bool {
	s.serial.Lock()
	defer s.serial.Unlock()
	_, _, err := s.provider.IntrospectToken(ctx, token, fosite.AccessToken, new(fosite.DefaultSession))
	return err == nil
}

func (s *MachineServer) token(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	s.serial.Lock()
	defer s.serial.Unlock()
	ctx := r.Context()
	if err := r.ParseForm(); err == nil {
		s.mu.Lock()
		s.last, s.lastHdr = r.PostForm, r.Header.Clone()
		s.mu.Unlock()
	}
	ar, err := s.provider.NewAccessRequest(ctx, r, new(fosite.DefaultSession))
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	for _, sc := range ar.GetRequestedScopes() {
		ar.GrantScope(sc) // the handlers checked them against the client's or issuer's
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	s.mints.Add(1)
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

func (s *MachineServer) me(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.serial.Lock()
	_, ar, err := s.provider.IntrospectToken(r.Context(), tok, fosite.AccessToken, new(fosite.DefaultSession))
	s.serial.Unlock()
	if err != nil || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"sub": ar.GetSession().GetSubject(), "scope": strings.Join(ar.GetGrantedScopes(), " ")})
}

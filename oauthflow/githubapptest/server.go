// Package githubapptest is a protocol-faithful local endpoint of GitHub's installation
// access token API, for tests: POST /app/installations/{installation_id}/access_tokens
// authenticated by an app JWT (RS256, verified with the app's public key; iss the App ID
// or Client ID; iat and exp present, exp in the future, iat not in the future beyond 60 s
// of drift, exp - iat at most 600 s), with GitHub's optional "repositories",
// "repository_ids" and "permissions" narrowing (a repository the installation cannot reach,
// or a permission above the installation's, is 422 as at GitHub); tokens that expire in an
// hour; DELETE /installation/token (the token revokes itself, 204); and
// GET /installation/repositories, which answers with what a token may see (401 for a
// revoked, expired or unknown one). Every minted token is recorded with what it was
// limited to, so a test can prove what a proxy asked for.
package githubapptest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base32"
	"encoding/json"
	"encoding/pem"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Installation is one installation of the app: the repositories it may reach and its
// permissions (name → read, write or admin).
type Installation struct {
	Repositories []string
	Permissions  map[string]string
	// Suspended installations answer 403.
	Suspended bool
}

// Options configure a Server. Zero values take the defaults named per field.
type Options struct {
	AppID    string // the numeric App ID (default "424242")
	ClientID string // the app's Client ID, accepted as iss too (default "Iv23liTestClientID")
	// Installations by id (default: "1001" with repositories alpha, beta, gamma and
	// permissions contents:write, issues:write, metadata:read, pull_requests:read).
	Installations map[string]Installation
	// TokenLifetime defaults to one hour, as at GitHub (SetTokenLifetime changes it).
	TokenLifetime time.Duration
	// Now is the server's clock (default time.Now).
	Now func() time.Time
}

// Record is a minted token as the server keeps it.
type Record struct {
	Installation string
	Repositories []string          // sorted; nil: every repository of the installation
	Permissions  map[string]string // what the token was granted
	ExpiresAt    time.Time
	Revoked      bool
	// Narrowed says the request carried repositories or permissions.
	Narrowed bool
}

// Server is a running installation token endpoint.
type Server struct {
	URL string

	opts Options
	key  *rsa.PrivateKey
	pub  atomic.Pointer[rsa.PublicKey]
	http *httptest.Server

	mints       atomic.Int64
	refusals    atomic.Int64
	revocations atomic.Int64
	delay       atomic.Int64 // nanoseconds each mint waits before answering
	lifetime    atomic.Int64 // nanoseconds a token lasts

	mu     sync.Mutex
	tokens map[string]*Record
	last   string // the last minted token
}

// New starts a server; it is closed when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.AppID == "" {
		opts.AppID = "424242"
	}
	if opts.ClientID == "" {
		opts.ClientID = "Iv23liTestClientID"
	}
	if opts.Installations == nil {
		opts.Installations = map[string]Installation{"1001": {Repositories: []string{"alpha", "beta", "gamma"},
			Permissions: map[string]string{"contents": "write", "issues": "write", "metadata": "read", "pull_requests": "read"}}}
	}
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("githubapptest: key: %v", err)
	}
	s := &Server{opts: opts, key: key, tokens: map[string]*Record{}}
	s.pub.Store(&key.PublicKey)
	s.lifetime.Store(int64(opts.TokenLifetime))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /app/installations/{id}/access_tokens", s.handleMint)
	mux.HandleFunc("DELETE /installation/token", s.handleRevoke)
	mux.HandleFunc("GET /installation/repositories", s.handleRepositories)
	s.http = httptest.NewServer(mux)
	s.URL = s.http.URL
	t.Cleanup(s.http.Close)
	return s
}

// AppID and ClientID are the app's identifiers, either of which is a valid iss.
func (s *Server) AppID() string    { return s.opts.AppID }
func (s *Server) ClientID() string { return s.opts.ClientID }

// PrivateKeyPEM is the app's private key as GitHub hands it out (PKCS#1 PEM).
func (s *Server) PrivateKeyPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(s.key)}))
}

// RotateKey makes the server verify app JWTs with a new key's public half: the key handed
// out before is rejected from now on (401), as after the app's key was deleted at GitHub.
func (s *Server) RotateKey(t testing.TB) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("githubapptest: key: %v", err)
	}
	s.pub.Store(&k.PublicKey)
}

// SetTokenLifetime sets how long the tokens minted from now on last.
func (s *Server) SetTokenLifetime(d time.Duration) { s.lifetime.Store(int64(d)) }

// SetDelay makes each mint wait d before it answers (to overlap concurrent callers).
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// Mints counts the tokens issued; Refusals the mint requests refused; Revocations the
// tokens revoked.
func (s *Server) Mints() int64       { return s.mints.Load() }
func (s *Server) Refusals() int64    { return s.refusals.Load() }
func (s *Server) Revocations() int64 { return s.revocations.Load() }

// Token returns the record of a minted token.
func (s *Server) Token(token string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.tokens[token]
	if !ok {
		return Record{}, false
	}
	out := *r
	out.Repositories = slices.Clone(r.Repositories)
	out.Permissions = maps.Clone(r.Permissions)
	return out, true
}

// Last is the last token minted ("" when none).
func (s *Server) Last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// ghError answers as GitHub does: {"message":..,"documentation_url":..,"status":".."}.
func ghError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg,
		"documentation_url": "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app",
		"status":            http.StatusText(status)})
}

// verifyJWT checks the app JWT of r's Authorization header.
func (s *Server) verifyJWT(r *http.Request) (string, bool) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return "'Authorization' header is malformed", false
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return "A JSON web token could not be decoded", false
	}
	var c jwt.Claims
	if err := tok.Claims(s.pub.Load(), &c); err != nil {
		return "A JSON web token could not be decoded", false
	}
	if c.Issuer != s.opts.AppID && c.Issuer != s.opts.ClientID {
		return "'Issuer' claim ('iss') must be an Integer or a valid Client ID", false
	}
	if c.IssuedAt == nil || c.Expiry == nil {
		return "Missing 'issued at' or 'expiration time' claim", false
	}
	now := s.opts.Now()
	iat, exp := c.IssuedAt.Time(), c.Expiry.Time()
	switch {
	case iat.After(now.Add(60 * time.Second)):
		return "'Issued at' claim ('iat') must be an Integer representing a time in the past", false
	case !exp.After(now):
		return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires", false
	case exp.Sub(iat) > 10*time.Minute, exp.After(now.Add(10*time.Minute + 60*time.Second)):
		return "'Expiration time' claim ('exp') is too far in the future", false
	}
	return "", true
}

type mintRequest struct {
	Repositories  []string          `json:"repositories"`
	RepositoryIDs []int64           `json:"repository_ids"`
	Permissions   map[string]string `json:"permissions"`
}

var accessRank = map[string]int{"read": 1, "write": 2, "admin": 3}

func (s *Server) handleMint(w http.ResponseWriter, r *http.Request) {
	if d := time.Duration(s.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	if v := r.Header.Get("X-GitHub-Api-Version"); v != "" && v != "2022-11-28" {
		s.refusals.Add(1)
		ghError(w, http.StatusBadRequest, "Unsupported API version")
		return
	}
	if msg, ok := s.verifyJWT(r); !ok {
		s.refusals.Add(1)
		ghError(w, http.StatusUnauthorized, msg)
		return
	}
	inst, ok := s.opts.Installations[r.PathValue("id")]
	if !ok {
		s.refusals.Add(1)
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	if inst.Suspended {
		s.refusals.Add(1)
		ghError(w, http.StatusForbidden, "This installation has been suspended")
		return
	}
	var req mintRequest
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.refusals.Add(1)
			ghError(w, http.StatusUnprocessableEntity, "Invalid request.")
			return
		}
	}
	if len(req.RepositoryIDs) > 0 {
		s.refusals.Add(1)
		ghError(w, http.StatusUnprocessableEntity, "repository_ids are not known to this test server")
		return
	}
	rec := &Record{Installation: r.PathValue("id"), Narrowed: len(req.Repositories) > 0 || len(req.Permissions) > 0}
	if len(req.Repositories) > 500 {
		s.refusals.Add(1)
		ghError(w, http.StatusUnprocessableEntity, "Too many repositories")
		return
	}
	for _, name := range req.Repositories {
		if !slices.Contains(inst.Repositories, name) {
			s.refusals.Add(1)
			ghError(w, http.StatusUnprocessableEntity, "There is at least one repository that does not exist or is not accessible to the parent installation.")
			return
		}
	}
	if len(req.Repositories) > 0 {
		rec.Repositories = slices.Sorted(slices.Values(req.Repositories))
		rec.Repositories = slices.Compact(rec.Repositories)
	}
	rec.Permissions = maps.Clone(inst.Permissions)
	if len(req.Permissions) > 0 {
		rec.Permissions = map[string]string{}
		for name, access := range req.Permissions {
			have, ok := inst.Permissions[name]
			if !ok || accessRank[access] == 0 || accessRank[access] > accessRank[have] {
				s.refusals.Add(1)
				ghError(w, http.StatusUnprocessableEntity, "The permissions requested are not granted to this installation.")
				return
			}
			rec.Permissions[name] = access
		}
	}
	var b [25]byte
	_, _ = rand.Read(b[:])
	token := "ghs_" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])[:36]
	rec.ExpiresAt = s.opts.Now().Add(time.Duration(s.lifetime.Load())).UTC().Truncate(time.Second)
	s.mu.Lock()
	s.tokens[token], s.last = rec, token
	s.mu.Unlock()
	s.mints.Add(1)
	resp := map[string]any{"token": token, "expires_at": rec.ExpiresAt.Format(time.RFC3339),
		"permissions": rec.Permissions, "repository_selection": "all"}
	if rec.Repositories != nil {
		resp["repository_selection"] = "selected"
		repos := make([]map[string]any, len(rec.Repositories))
		for i, name := range rec.Repositories {
			repos[i] = map[string]any{"id": 1000 + i, "name": name, "full_name": "octo-org/" + name, "private": true}
		}
		resp["repositories"] = repos
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(resp)
}

// tokenOf returns the live record of r's installation token (Authorization: Bearer or
// token).
func (s *Server) tokenOf(r *http.Request) (string, *Record, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "token ")
	}
	if !ok {
		return "", nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.tokens[tok]
	if !ok || rec.Revoked || !s.opts.Now().Before(rec.ExpiresAt) {
		return "", nil, false
	}
	return tok, rec, true
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	_, rec, ok := s.tokenOf(r)
	if !ok {
		ghError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	s.mu.Lock()
	rec.Revoked = true
	s.mu.Unlock()
	s.revocations.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleRepositories(w http.ResponseWriter, r *http.Request) {
	_, rec, ok := s.tokenOf(r)
	if !ok {
		ghError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	repos := rec.Repositories
	if repos == nil {
		repos = s.opts.Installations[rec.Installation].Repositories
	}
	list := make([]map[string]any, len(repos))
	for i, name := range repos {
		list[i] = map[string]any{"name": name, "full_name": "octo-org/" + name}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"total_count": len(list), "repositories": list})
}

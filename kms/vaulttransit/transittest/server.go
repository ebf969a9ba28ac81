// Package transittest is a protocol-faithful fake of Vault's Transit secrets engine and
// its AppRole and Kubernetes logins, for tests of kms/vaulttransit. It speaks Vault's
// HTTP API (X-Vault-Token, X-Vault-Namespace, {"data":...} and {"errors":[...]} bodies)
// and does real cryptography the way Transit does for aes256-gcm96 keys: AES-256-GCM
// with a random 96-bit nonce under a per-version key, "vault:v<N>:" + base64(nonce ‖
// ciphertext ‖ tag), associated_data bound as GCM additional data, key rotation and
// min_decryption_version. Failures (status codes, latency, denied operations) can be
// injected and every request is counted.
//
// It is a test double, never a KMS: keys live in memory only.
package transittest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Operation names for Calls, Forbid and the counters.
const (
	OpEncrypt   = "encrypt"
	OpDecrypt   = "decrypt"
	OpReadKey   = "read-key"
	OpWriteKey  = "write-key"
	OpRotate    = "rotate"
	OpConfig    = "config"
	OpDeleteKey = "delete-key"
	OpMounts    = "mounts"
	OpLogin     = "login"
	OpOther     = "other"
	maxBodySize = 1 << 20
)

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	srv       *httptest.Server
	rootToken string
	now       func() time.Time

	mu        sync.Mutex
	mounts    map[string]map[string]*key // full mount path (namespace included) -> keys
	auths     map[string]authMount       // full auth mount path, e.g. "auth/approle"
	tokens    map[[32]byte]time.Time     // sha256(token) -> expiry of login tokens
	calls     map[string]int
	failN     int
	failCode  int
	delay     time.Duration
	forbidden map[string]bool
	ignoreAAD bool
	loginTTL  time.Duration
}

type key struct {
	versions   [][]byte // versions[i] is version i+1
	minDecrypt int
	deletable  bool
	created    []time.Time
}

type authMount struct {
	kind             string // "approle" or "kubernetes"
	roleOrID, secret string // AppRole role_id/secret_id, or Kubernetes role/jwt
}

// Option configures New.
type Option func(*Server)

// WithMounts sets the transit mounts (namespace prefix included, e.g. "ns1/transit").
// The default is a single "transit" mount.
func WithMounts(mounts ...string) Option {
	return func(s *Server) {
		s.mounts = map[string]map[string]*key{}
		for _, m := range mounts {
			s.mounts[strings.Trim(m, "/")] = map[string]*key{}
		}
	}
}

// WithClock sets the clock for login token expiry.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithLoginTTL sets the lease_duration of login tokens (default 1h).
func WithLoginTTL(d time.Duration) Option { return func(s *Server) { s.loginTTL = d } }

// New starts a fake on a plain-HTTP loopback listener and closes it when t ends.
func New(t testing.TB, opts ...Option) *Server { return start(t, false, opts) }

// NewTLS starts a fake behind TLS with httptest's self-signed certificate (see CACertPEM).
func NewTLS(t testing.TB, opts ...Option) *Server { return start(t, true, opts) }

func start(t testing.TB, useTLS bool, opts []Option) *Server {
	t.Helper()
	s := &Server{
		rootToken: "hvs." + randomString(t, 24),
		now:       time.Now,
		mounts:    map[string]map[string]*key{"transit": {}},
		auths:     map[string]authMount{},
		tokens:    map[[32]byte]time.Time{},
		calls:     map[string]int{},
		forbidden: map[string]bool{},
		loginTTL:  time.Hour,
	}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	// Handshakes that a test's client refuses on purpose are not news.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if useTLS {
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	t.Cleanup(s.srv.Close)
	return s
}

func randomString(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// URL is the server's base URL (http:// or https://).
func (s *Server) URL() string { return s.srv.URL }

// HostPort is the listener's host:port.
func (s *Server) HostPort() string { return s.srv.Listener.Addr().String() }

// URI is the vault-transit:// URI of mount/key on this server (with tls=false when the
// server is plain HTTP). extra is appended as query parameters, e.g. "namespace=ns1".
func (s *Server) URI(mount, keyName string, extra ...string) string {
	q := extra
	if s.srv.TLS == nil {
		q = append([]string{"tls=false"}, q...)
	}
	u := "vault-transit://" + s.HostPort() + "/" + mount + "/" + keyName
	if len(q) > 0 {
		u += "?" + strings.Join(q, "&")
	}
	return u
}

// RootToken is a token that passes every check (like a dev server's root token).
func (s *Server) RootToken() string { return s.rootToken }

// CACertPEM is the TLS server's certificate in PEM (nil for a plain-HTTP server).
func (s *Server) CACertPEM() []byte {
	if s.srv.TLS == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// EnableAppRole mounts AppRole at auth/<mount> accepting one role_id/secret_id pair. A
// mount in a namespace is given in full: "team-a/auth/approle".
func (s *Server) EnableAppRole(mount, roleID, secretID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auths[authPath(mount)] = authMount{kind: "approle", roleOrID: roleID, secret: secretID}
}

// EnableKubernetes mounts Kubernetes auth at auth/<mount> accepting one role and JWT.
func (s *Server) EnableKubernetes(mount, role, jwt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auths[authPath(mount)] = authMount{kind: "kubernetes", roleOrID: role, secret: jwt}
}

func authPath(mount string) string {
	mount = strings.Trim(mount, "/")
	if strings.HasPrefix(mount, "auth/") || strings.Contains(mount, "/auth/") {
		return mount
	}
	return "auth/" + mount
}

// IssueToken mints a non-root token valid for ttl (as `vault token create` would); Forbid
// applies to it.
func (s *Server) IssueToken(t testing.TB, ttl time.Duration) string {
	tok := "hvs." + randomString(t, 24)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[sha256.Sum256([]byte(tok))] = s.now().Add(ttl)
	return tok
}

// RevokeLoginTokens expires every token issued by a login or IssueToken (the root token stays).
func (s *Server) RevokeLoginTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// CreateKey creates an aes256-gcm96 key at version 1 (no-op if it exists).
func (s *Server) CreateKey(mount, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys, ok := s.mounts[mount]
	if !ok {
		return fmt.Errorf("transittest: no mount %q", mount)
	}
	if keys[name] == nil {
		keys[name] = s.newKey()
	}
	return nil
}

// RotateKey adds a new version to mount/name and returns it.
func (s *Server) RotateKey(mount, name string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.mounts[mount][name]
	if k == nil {
		return 0, fmt.Errorf("transittest: no key %s/%s", mount, name)
	}
	s.rotate(k)
	return len(k.versions), nil
}

// SetMinDecryptionVersion sets the key's min_decryption_version.
func (s *Server) SetMinDecryptionVersion(mount, name string, v int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.mounts[mount][name]
	if k == nil {
		return fmt.Errorf("transittest: no key %s/%s", mount, name)
	}
	if v < 1 || v > len(k.versions) {
		return fmt.Errorf("transittest: min_decryption_version %d out of 1..%d", v, len(k.versions))
	}
	k.minDecrypt = v
	return nil
}

// LatestVersion is the key's latest version (0 if it does not exist).
func (s *Server) LatestVersion(mount, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.mounts[mount][name]; k != nil {
		return len(k.versions)
	}
	return 0
}

// FailNext answers the next n requests with status (503 "Vault is sealed", 429 "rate
// limit quota exceeded", or any other code) before doing anything else.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode = n, status
}

// SetDelay makes every request wait d (or until the client gives up) before answering.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Forbid makes op (OpEncrypt, OpDecrypt, ...) answer 403 "permission denied" for every
// token but the root token, as a policy without the grant would.
func (s *Server) Forbid(op string, forbid bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forbidden[op] = forbid
}

// IgnoreAssociatedData makes encrypt and decrypt drop associated_data, as a Vault that
// predates the parameter (or a non-AEAD key) does.
func (s *Server) IgnoreAssociatedData(ignore bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ignoreAAD = ignore
}

// Calls is how many requests for op have arrived (injected failures included).
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// ResetCalls zeroes the counters.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
}

func (s *Server) newKey() *key {
	k := &key{minDecrypt: 1}
	s.rotate(k)
	return k
}

func (s *Server) rotate(k *key) {
	material := make([]byte, 32)
	if _, err := rand.Read(material); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	k.versions = append(k.versions, material)
	k.created = append(k.created, s.now())
}

// Unreachable returns a host:port on the loopback interface where nothing listens.
func Unreachable(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

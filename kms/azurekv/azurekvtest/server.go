// Package azurekvtest is a protocol-faithful local Azure Key Vault for tests: an HTTPS
// server implementing the keys wrapKey and unwrapKey operations (real RSA-OAEP-256 with
// RSA-2048 keys, real AES key wrap with 256-bit "oct-HSM" keys as a Managed HSM holds),
// key versions, the api-version check, and the bearer challenge the SDK performs: a
// request without a valid token gets 401 with
// WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
// resource="https://vault.azure.net" (or managedhsm.azure.net), and the SDK asks its
// credential for a token for that resource and sends the request again. Errors come back
// in Key Vault's JSON shape ({"error":{"code","message"}}) with its status codes.
package azurekvtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// APIVersions are the api-version values the server accepts (the SDK's, and earlier ones).
var APIVersions = []string{"2026-04-01", "2025-07-01", "7.6", "7.5", "7.4"}

// Tenant is the tenant the challenge names.
const Tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

// Config shapes a server.
type Config struct {
	// ManagedHSM makes the challenge name https://managedhsm.azure.net.
	ManagedHSM bool
	// Token is the bearer token a request must carry (default "kv-test-token").
	Token string
	// AlwaysDecrypt turns off the unwrap memo (see Server): every RSA unwrap runs the
	// private-key operation.
	AlwaysDecrypt bool
}

// KeyKind is the type of a key.
type KeyKind int

// Key types.
const (
	RSA KeyKind = iota // RSA-2048 (RSA-HSM): RSA-OAEP-256
	Oct                // AES-256 (oct-HSM, Managed HSM): A256KW
)

// Server is a running fake Key Vault.
//
// RSA private-key operations are slow under the race detector on busy machines, so the
// server remembers the RSA ciphertexts it made (SHA-256 of key version and ciphertext →
// plaintext) and answers an unwrap of one of them from that memo: the same answer the
// private key gives. Any other ciphertext (tampered, truncated, made elsewhere) is
// decrypted for real. Config.AlwaysDecrypt turns the memo off.
type Server struct {
	*httptest.Server
	cfg Config

	mu   sync.Mutex
	keys map[string]*key

	calls      sync.Map // "wrapkey", "unwrapkey" -> *atomic.Int64
	challenges atomic.Int64
	failNext   atomic.Int64
	failStatus atomic.Int64
	scopes     sync.Map // scope -> true, as the test credential was asked
	memo       sync.Map // [32]byte -> plaintext
}

func memoKey(ver string, ct []byte) [32]byte {
	return sha256.Sum256(append([]byte(ver+"\x00"), ct...))
}

type key struct {
	kind     KeyKind
	versions map[string]*version
	current  string
}

type version struct {
	rsa     *rsa.PrivateKey
	aes     []byte
	enabled bool
}

// NewServer starts an HTTPS server on 127.0.0.1; it stops when the test ends.
func NewServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = "kv-test-token"
	}
	s := &Server{cfg: cfg, keys: map[string]*key{}}
	// HTTP/2, as Key Vault serves it: concurrent calls share one TLS connection.
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.EnableHTTP2 = true
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// Host is the vault host the URIs name (requests go to the endpoint override).
func (s *Server) Host() string {
	if s.cfg.ManagedHSM {
		return "authpipe-test.managedhsm.azure.net"
	}
	return "authpipe-test.vault.azure.net"
}

// URI is the azurekv:// URI of key name on this server.
func (s *Server) URI(name string) string {
	return "azurekv://" + s.Host() + "/keys/" + name + "?endpoint=" + s.URL
}

// HTTPClient is a client that trusts the server's certificate and keeps enough idle
// connections for concurrent tests (as the backend's own client does).
func (s *Server) HTTPClient() *http.Client {
	tr := s.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr}
}

// Resource is the resource the challenge names.
func (s *Server) Resource() string {
	if s.cfg.ManagedHSM {
		return "https://managedhsm.azure.net"
	}
	return "https://vault.azure.net"
}

// Credential returns a token credential that hands out this server's token and records
// the scopes it was asked for.
func (s *Server) Credential() *Credential { return &Credential{s: s, token: s.cfg.Token} }

var nameSeq atomic.Int64

// CreateKey makes a key with one enabled version and returns its name.
func (s *Server) CreateKey(t testing.TB, kind KeyKind) string {
	t.Helper()
	name := fmt.Sprintf("kek-%d", nameSeq.Add(1))
	s.mu.Lock()
	s.keys[name] = &key{kind: kind, versions: map[string]*version{}}
	s.mu.Unlock()
	s.RotateKey(t, name)
	return name
}

// RotateKey adds a new current version to name and returns its id.
func (s *Server) RotateKey(t testing.TB, name string) string {
	t.Helper()
	v := &version{enabled: true}
	s.mu.Lock()
	kind := s.keys[name].kind
	s.mu.Unlock()
	var err error
	if kind == RSA {
		v.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		v.aes = make([]byte, 32)
		_, err = rand.Read(v.aes)
	}
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	ver := hex.EncodeToString(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[name].versions[ver] = v
	s.keys[name].current = ver
	return ver
}

// SetEnabled enables or disables one version of name.
func (s *Server) SetEnabled(name, ver string, enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[name].versions[ver].enabled = enabled
}

// FailNext makes the next n authorized operations fail with status.
func (s *Server) FailNext(n, status int) {
	s.failStatus.Store(int64(status))
	s.failNext.Store(int64(n))
}

// Calls counts the authorized calls of an operation ("wrapkey", "unwrapkey").
func (s *Server) Calls(op string) int64 {
	if v, ok := s.calls.Load(op); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// Challenges counts the 401 challenges sent.
func (s *Server) Challenges() int64 { return s.challenges.Load() }

func kvError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("x-ms-request-id", "00000000-0000-0000-0000-000000000000")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	// api-version first, as Key Vault does.
	apiVersion := r.URL.Query().Get("api-version")
	ok := false
	for _, v := range APIVersions {
		ok = ok || v == apiVersion
	}
	if !ok {
		kvError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("The specified version (%s) is not recognized. Consider using the latest supported version (%s).", apiVersion, APIVersions[0]))
		return
	}
	auth := r.Header.Get("Authorization")
	if subtle.ConstantTimeCompare([]byte(auth), []byte("Bearer "+s.cfg.Token)) != 1 {
		s.challenges.Add(1)
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://login.microsoftonline.com/%s", resource="%s"`, Tenant, s.Resource()))
		msg := "AKV10000: Request is missing a Bearer or PoP token."
		if auth != "" {
			msg = "AKV10032: Invalid issuer or token."
		}
		kvError(w, http.StatusUnauthorized, "Unauthorized", msg)
		return
	}
	// /keys/{name}/{version}/{op}, or /keys/{name}/{op} for the current version.
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) == 3 {
		parts = []string{parts[0], parts[1], "", parts[2]}
	}
	if r.Method != http.MethodPost || len(parts) != 4 || parts[0] != "keys" || (parts[3] != "wrapkey" && parts[3] != "unwrapkey") {
		kvError(w, http.StatusNotFound, "NotFound", "The requested operation is not supported by this test server.")
		return
	}
	name, ver, op := parts[1], parts[2], parts[3]
	counter, _ := s.calls.LoadOrStore(op, new(atomic.Int64))
	counter.(*atomic.Int64).Add(1)
	if s.failNext.Load() > 0 && s.failNext.Add(-1) >= 0 {
		kvError(w, int(s.failStatus.Load()), "ServiceUnavailable", "injected failure")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		kvError(w, http.StatusBadRequest, "BadParameter", "Content-Type must be application/json.")
		return
	}
	var body struct {
		Alg   string `json:"alg"`
		Value string `json:"value"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Value == "" {
		kvError(w, http.StatusBadRequest, "BadParameter", "Property 'value' is required.")
		return
	}
	value, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(body.Value, "="))
	if err != nil {
		kvError(w, http.StatusBadRequest, "BadParameter", "Property 'value' is not base64url.")
		return
	}

	s.mu.Lock()
	k := s.keys[name]
	var v *version
	var kind KeyKind
	if k != nil {
		if ver == "" {
			ver = k.current
		}
		v, kind = k.versions[ver], k.kind
	}
	enabled := v != nil && v.enabled
	s.mu.Unlock()
	switch {
	case v == nil:
		kvError(w, http.StatusNotFound, "KeyNotFound", fmt.Sprintf("A key with (name/id) %s/%s was not found in this key vault.", name, ver))
		return
	case !enabled:
		kvError(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("Operation %s is not allowed on a disabled key.", op))
		return
	case kind == RSA && body.Alg != "RSA-OAEP-256" && body.Alg != "RSA-OAEP" && body.Alg != "RSA1_5",
		kind == Oct && body.Alg != "A256KW":
		kvError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("Algorithm %q is not supported for this key type.", body.Alg))
		return
	}

	var result []byte
	switch {
	case op == "wrapkey" && kind == RSA:
		if body.Alg != "RSA-OAEP-256" {
			kvError(w, http.StatusBadRequest, "BadParameter", "This test server implements RSA-OAEP-256 only.")
			return
		}
		result, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, &v.rsa.PublicKey, value, nil)
		if err == nil && !s.cfg.AlwaysDecrypt {
			s.memo.Store(memoKey(ver, result), append([]byte(nil), value...))
		}
	case op == "unwrapkey" && kind == RSA:
		if pt, ok := s.memo.Load(memoKey(ver, value)); ok {
			result = append([]byte(nil), pt.([]byte)...)
		} else {
			result, err = rsa.DecryptOAEP(sha256.New(), nil, v.rsa, value, nil)
		}
	case op == "wrapkey":
		result, err = aesKeyWrap(v.aes, value)
	default:
		result, err = aesKeyUnwrap(v.aes, value)
	}
	if err != nil {
		kvError(w, http.StatusBadRequest, "BadParameter", "Error processing the request: the value could not be "+strings.TrimSuffix(op, "key")+"ped.")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"kid":   "https://" + s.Host() + "/keys/" + name + "/" + ver,
		"value": base64.RawURLEncoding.EncodeToString(result),
	})
}

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
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
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

// request is one parsed API call.
type request struct {
	op        string
	mount     string // full mount path
	keyName   string
	authMount string
	body      map[string]any
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	req, status, msg := s.route(w, r)
	s.mu.Lock()
	s.calls[req.op]++
	delay := s.delay
	var injected int
	if s.failN > 0 {
		s.failN--
		injected = s.failCode
	}
	s.mu.Unlock()

	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if injected != 0 {
		writeErrors(w, injected, injectedMessage(injected))
		return
	}
	if status != 0 {
		writeErrors(w, status, msg)
		return
	}
	if req.op == OpLogin {
		s.login(w, req)
		return
	}
	if !s.authorized(r, req.op) {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	if req.op == OpMounts {
		s.listMounts(w, r)
		return
	}
	s.transit(w, r, req)
}

func injectedMessage(code int) string {
	switch code {
	case http.StatusServiceUnavailable:
		return "Vault is sealed"
	case http.StatusTooManyRequests:
		return "request path \"transit\": rate limit quota exceeded"
	default:
		return "injected failure"
	}
}

// route maps method and path (namespace header prepended, as Vault does) to an operation.
func (s *Server) route(w http.ResponseWriter, r *http.Request) (request, int, string) {
	req := request{op: OpOther}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		return req, http.StatusNotFound, "404 page not found"
	}
	full := strings.Trim(strings.Trim(r.Header.Get("X-Vault-Namespace"), "/")+"/"+rest, "/")
	write := r.Method == http.MethodPost || r.Method == http.MethodPut
	if write {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
		if err != nil {
			return req, http.StatusRequestEntityTooLarge, "request body too large"
		}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &req.body); err != nil {
				return req, http.StatusBadRequest, "failed to parse JSON input: " + err.Error()
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if full == "sys/mounts" || strings.HasSuffix(full, "/sys/mounts") {
		req.op = OpMounts
		if r.Method != http.MethodGet {
			return req, http.StatusMethodNotAllowed, "unsupported operation"
		}
		return req, 0, ""
	}
	if m, ok := strings.CutSuffix(full, "/login"); ok && (strings.HasPrefix(m, "auth/") || strings.Contains(m, "/auth/")) {
		req.op, req.authMount = OpLogin, m
		if !write {
			return req, http.StatusMethodNotAllowed, "unsupported operation"
		}
		if _, ok := s.auths[m]; !ok {
			return req, http.StatusBadRequest, "no handler for route \"" + full + "\". route entry not found."
		}
		return req, 0, ""
	}
	for mount := range s.mounts {
		tail, ok := strings.CutPrefix(full, mount+"/")
		if !ok {
			continue
		}
		req.mount = mount
		parts := strings.Split(tail, "/")
		switch {
		case len(parts) == 2 && parts[0] == "encrypt" && write:
			req.op, req.keyName = OpEncrypt, parts[1]
		case len(parts) == 2 && parts[0] == "decrypt" && write:
			req.op, req.keyName = OpDecrypt, parts[1]
		case len(parts) == 2 && parts[0] == "keys" && r.Method == http.MethodGet:
			req.op, req.keyName = OpReadKey, parts[1]
		case len(parts) == 2 && parts[0] == "keys" && write:
			req.op, req.keyName = OpWriteKey, parts[1]
		case len(parts) == 2 && parts[0] == "keys" && r.Method == http.MethodDelete:
			req.op, req.keyName = OpDeleteKey, parts[1]
		case len(parts) == 3 && parts[0] == "keys" && parts[2] == "rotate" && write:
			req.op, req.keyName = OpRotate, parts[1]
		case len(parts) == 3 && parts[0] == "keys" && parts[2] == "config" && write:
			req.op, req.keyName = OpConfig, parts[1]
		default:
			return req, http.StatusMethodNotAllowed, "unsupported operation"
		}
		if req.keyName == "" {
			return req, http.StatusBadRequest, "missing name"
		}
		return req, 0, ""
	}
	return req, http.StatusNotFound, "no handler for route \"" + full + "\". route entry not found."
}

func (s *Server) authorized(r *http.Request, op string) bool {
	tok := r.Header.Get("X-Vault-Token")
	if tok == "" {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.rootToken)) == 1 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[sha256.Sum256([]byte(tok))]
	return ok && s.now().Before(exp) && !s.forbidden[op]
}

func (s *Server) login(w http.ResponseWriter, req request) {
	str := func(k string) string { v, _ := req.body[k].(string); return v }
	s.mu.Lock()
	a := s.auths[req.authMount]
	forbidden := s.forbidden[OpLogin]
	s.mu.Unlock()
	var ok bool
	switch a.kind {
	case "approle":
		if str("role_id") == "" {
			writeErrors(w, http.StatusBadRequest, "missing role_id")
			return
		}
		ok = eq(str("role_id"), a.roleOrID) && eq(str("secret_id"), a.secret)
	case "kubernetes":
		ok = eq(str("role"), a.roleOrID) && eq(str("jwt"), a.secret)
	}
	if !ok || forbidden {
		if a.kind == "approle" {
			writeErrors(w, http.StatusBadRequest, "invalid role or secret ID")
		} else {
			writeErrors(w, http.StatusForbidden, "permission denied")
		}
		return
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		writeErrors(w, http.StatusInternalServerError, "entropy")
		return
	}
	tok := "hvs." + base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	s.tokens[sha256.Sum256([]byte(tok))] = s.now().Add(s.loginTTL)
	ttl := int(s.loginTTL / time.Second)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"request_id": "fake", "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": nil, "wrap_info": nil, "warnings": nil,
		"auth": map[string]any{
			"client_token": tok, "accessor": "fake-accessor", "policies": []string{"default", "authpipe"},
			"token_policies": []string{"default", "authpipe"}, "lease_duration": ttl, "renewable": true,
			"metadata": map[string]string{"role_name": a.roleOrID}, "entity_id": "", "token_type": "service", "orphan": true,
		},
	})
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (s *Server) transit(w http.ResponseWriter, r *http.Request, req request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := s.mounts[req.mount]
	k := keys[req.keyName]
	str := func(name string) string { v, _ := req.body[name].(string); return v }
	num := func(name string) (int, bool) {
		switch v := req.body[name].(type) {
		case float64:
			return int(v), v == float64(int(v))
		case string:
			n, err := strconv.Atoi(v)
			return n, err == nil
		case nil:
			return 0, true
		}
		return 0, false
	}
	aad := func() ([]byte, bool) {
		if s.ignoreAAD {
			return nil, true
		}
		b, err := base64.StdEncoding.DecodeString(str("associated_data"))
		return b, err == nil
	}

	switch req.op {
	case OpEncrypt:
		pt, err := base64.StdEncoding.DecodeString(str("plaintext"))
		if err != nil {
			writeErrors(w, http.StatusBadRequest, "failed to base64-decode plaintext")
			return
		}
		ad, ok := aad()
		if !ok {
			writeErrors(w, http.StatusBadRequest, "failed to base64-decode associated_data")
			return
		}
		if k == nil { // Vault upserts on encrypt (given the "create" capability)
			k = s.newKey()
			keys[req.keyName] = k
		}
		v, ok := num("key_version")
		if !ok || v < 0 || v > len(k.versions) {
			writeErrors(w, http.StatusBadRequest, "invalid key version")
			return
		}
		if v == 0 {
			v = len(k.versions)
		}
		gcm := newGCM(k.versions[v-1])
		nonce := make([]byte, gcm.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			writeErrors(w, http.StatusInternalServerError, "entropy")
			return
		}
		sealed := gcm.Seal(nonce, nonce, pt, ad)
		writeData(w, map[string]any{
			"ciphertext":  "vault:v" + strconv.Itoa(v) + ":" + base64.StdEncoding.EncodeToString(sealed),
			"key_version": v,
		})
	case OpDecrypt:
		ct := str("ciphertext")
		if ct == "" {
			writeErrors(w, http.StatusBadRequest, "missing ciphertext to decrypt")
			return
		}
		if k == nil {
			writeErrors(w, http.StatusBadRequest, "encryption key not found")
			return
		}
		ad, ok := aad()
		if !ok {
			writeErrors(w, http.StatusBadRequest, "failed to base64-decode associated_data")
			return
		}
		pt, status, msg := k.decrypt(ct, ad)
		if status != 0 {
			writeErrors(w, status, msg)
			return
		}
		writeData(w, map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)})
	case OpReadKey:
		if k == nil {
			writeErrors(w, http.StatusNotFound)
			return
		}
		writeData(w, k.metadata(req.keyName))
	case OpWriteKey:
		if typ := str("type"); typ != "" && typ != "aes256-gcm96" {
			writeErrors(w, http.StatusBadRequest, "transittest supports only aes256-gcm96 keys, not "+typ)
			return
		}
		if k == nil {
			k = s.newKey()
			keys[req.keyName] = k
		}
		writeData(w, k.metadata(req.keyName))
	case OpRotate:
		if k == nil {
			writeErrors(w, http.StatusBadRequest, "encryption key not found")
			return
		}
		s.rotate(k)
		writeData(w, k.metadata(req.keyName))
	case OpDeleteKey:
		switch {
		case k == nil:
			w.WriteHeader(http.StatusNoContent)
		case !k.deletable:
			writeErrors(w, http.StatusBadRequest, "deletion is not allowed for this key")
		default:
			delete(keys, req.keyName)
			w.WriteHeader(http.StatusNoContent)
		}
	case OpConfig:
		if k == nil {
			writeErrors(w, http.StatusBadRequest, "encryption key not found")
			return
		}
		if _, set := req.body["min_decryption_version"]; set {
			v, ok := num("min_decryption_version")
			switch {
			case !ok || v < 0:
				writeErrors(w, http.StatusBadRequest, "min decryption version must be a positive integer")
				return
			case v > len(k.versions):
				writeErrors(w, http.StatusBadRequest, "cannot set min decryption version of "+strconv.Itoa(v)+", latest key version is "+strconv.Itoa(len(k.versions)))
				return
			case v == 0:
				v = 1
			}
			k.minDecrypt = v
		}
		if v, set := req.body["deletion_allowed"]; set {
			b, ok := v.(bool)
			if s, isStr := v.(string); isStr {
				b, ok = s == "true", s == "true" || s == "false"
			}
			if !ok {
				writeErrors(w, http.StatusBadRequest, "deletion_allowed must be a boolean")
				return
			}
			k.deletable = b
		}
		writeData(w, k.metadata(req.keyName))
	default:
		writeErrors(w, http.StatusMethodNotAllowed, "unsupported operation")
	}
}

// listMounts answers GET sys/mounts with the transit mounts of the request's namespace.
func (s *Server) listMounts(w http.ResponseWriter, r *http.Request) {
	ns := strings.Trim(r.Header.Get("X-Vault-Namespace"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{}
	for m := range s.mounts {
		rel := m
		if ns != "" {
			var ok bool
			if rel, ok = strings.CutPrefix(m, ns+"/"); !ok {
				continue
			}
		}
		out[rel+"/"] = map[string]any{"type": "transit", "description": "", "accessor": "transit_fake",
			"config": map[string]any{}, "options": nil, "local": false, "seal_wrap": false}
	}
	writeData(w, out)
}

// decrypt follows Transit's checks in Transit's order, with its messages.
func (k *key) decrypt(ct string, ad []byte) ([]byte, int, string) {
	rest, ok := strings.CutPrefix(ct, "vault:v")
	if !ok {
		return nil, http.StatusBadRequest, "invalid ciphertext: no prefix"
	}
	num, body, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, http.StatusBadRequest, "invalid ciphertext: wrong number of fields"
	}
	v, err := strconv.Atoi(num)
	if err != nil {
		return nil, http.StatusBadRequest, "invalid ciphertext: version number could not be decoded"
	}
	if v == 0 { // Transit reads v0 as v1 (ciphertexts from before versioning)
		v = 1
	}
	if v > len(k.versions) {
		return nil, http.StatusBadRequest, "invalid ciphertext: version is too new"
	}
	if v < k.minDecrypt {
		return nil, http.StatusBadRequest, "ciphertext or signature version is disallowed by policy (too old)"
	}
	sealed, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, http.StatusBadRequest, "invalid ciphertext: could not decode base64"
	}
	gcm := newGCM(k.versions[v-1])
	if len(sealed) < gcm.NonceSize()+gcm.Overhead() {
		return nil, http.StatusBadRequest, "invalid ciphertext: unable to decrypt"
	}
	pt, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], ad)
	if err != nil {
		return nil, http.StatusBadRequest, "cipher: message authentication failed"
	}
	return pt, 0, ""
}

func (k *key) metadata(name string) map[string]any {
	versions := map[string]int64{}
	for i := k.minDecrypt - 1; i < len(k.versions); i++ {
		versions[strconv.Itoa(i+1)] = k.created[i].Unix()
	}
	return map[string]any{
		"name": name, "type": "aes256-gcm96", "keys": versions,
		"latest_version": len(k.versions), "min_decryption_version": k.minDecrypt, "min_encryption_version": 0,
		"deletion_allowed": k.deletable, "derived": false, "exportable": false, "allow_plaintext_backup": false,
		"supports_encryption": true, "supports_decryption": true, "supports_derivation": true,
		"supports_signing": false, "auto_rotate_period": 0, "imported_key": false,
	}
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // keys are always 32 bytes here
	}
	gcm, err := cipher.NewGCM(block) // 96-bit nonce, 128-bit tag, as Transit's aes256-gcm96
	if err != nil {
		panic(err)
	}
	return gcm
}

func writeData(w http.ResponseWriter, data map[string]any) {
	writeJSON(w, http.StatusOK, map[string]any{
		"request_id": "fake", "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": data, "wrap_info": nil, "warnings": nil, "auth": nil,
	})
}

func writeErrors(w http.ResponseWriter, status int, errs ...string) {
	if errs == nil {
		errs = []string{}
	}
	writeJSON(w, status, map[string]any{"errors": errs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
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

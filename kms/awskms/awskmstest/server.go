// Package awskmstest is a local AWS KMS endpoint for tests: an httptest server that speaks
// the AWS JSON 1.1 protocol of the KMS API ("TrentService") well enough for the real
// aws-sdk-go-v2 client to run against it unchanged.
//
// It serves Encrypt, Decrypt, DescribeKey and GenerateRandom, dispatched on the
// X-Amz-Target header, with JSON bodies whose blobs are base64. It verifies the SigV4
// signature of every request (static test credentials, see AccessKeyID), encrypts with
// real AES-256-GCM under per-key random keys, embeds the key id in the ciphertext blob so
// Decrypt finds the key, binds the encryption context as GCM associated data (a mismatch
// is InvalidCiphertextException, HTTP 400, as in KMS), resolves aliases and key and alias
// ARNs, refuses disabled keys (DisabledException) and can inject failures such as
// throttling (ThrottlingException, HTTP 400) for the next N calls.
//
// It is a fake for tests: its ciphertext format is its own, not KMS's.
package awskmstest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Test credentials: the only ones the server accepts. They protect nothing.
const (
	AccessKeyID     = "AKIDAUTHPIPETEST0001"
	SecretAccessKey = "authpipe-awskmstest-secret-not-a-real-key"
	Account         = "111122223333"
	DefaultRegion   = "us-east-1"
)

const (
	targetPrefix  = "TrentService."
	contentType   = "application/x-amz-json-1.1"
	maxBody       = 64 << 10
	maxPlaintext  = 4096
	blobVersion   = 0x01
	nonceSize     = 12
	symmetricSpec = "SYMMETRIC_DEFAULT"
)

// Credentials returns a provider of the credentials the server accepts.
func Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")
}

// Key names a key the server holds.
type Key struct {
	ID  string
	ARN string
}

type key struct {
	Key
	aead    cipher.AEAD
	enabled bool
	created time.Time
}

type failure struct {
	status int
	typ    string
}

// Server is a running fake KMS endpoint. Its methods are safe for concurrent use.
type Server struct {
	// URL is the endpoint to give the SDK (BaseEndpoint, or awskms://...?endpoint=).
	URL    string
	region string
	srv    *httptest.Server
	now    func() time.Time

	mu       sync.Mutex
	keys     map[string]*key   // by key id
	aliases  map[string]string // alias/NAME -> key id
	failures []failure
	calls    map[string]int // by operation, every request that named one
	rejected int            // requests refused for authentication
}

// Config configures NewServer.
type Config struct {
	Region string // default DefaultRegion
}

// NewServer starts a server that tb closes at cleanup.
func NewServer(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	s := &Server{
		region:  cfg.Region,
		now:     time.Now,
		keys:    map[string]*key{},
		aliases: map[string]string{},
		calls:   map[string]int{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	tb.Cleanup(s.srv.Close)
	return s
}

// Region is the region the server signs for and puts into ARNs.
func (s *Server) Region() string { return s.region }

// CreateKey makes an enabled symmetric key with fresh random material.
func (s *Server) CreateKey(tb testing.TB) Key {
	tb.Helper()
	material := make([]byte, 32)
	idBytes := make([]byte, 16)
	if _, err := rand.Read(material); err != nil {
		tb.Fatal(err)
	}
	if _, err := rand.Read(idBytes); err != nil {
		tb.Fatal(err)
	}
	idBytes[6] = idBytes[6]&0x0f | 0x40
	idBytes[8] = idBytes[8]&0x3f | 0x80
	id := fmt.Sprintf("%x-%x-%x-%x-%x", idBytes[0:4], idBytes[4:6], idBytes[6:8], idBytes[8:10], idBytes[10:16])
	block, err := aes.NewCipher(material)
	if err != nil {
		tb.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		tb.Fatal(err)
	}
	k := &key{
		Key:     Key{ID: id, ARN: fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", s.region, Account, id)},
		aead:    aead,
		enabled: true,
		created: s.now(),
	}
	s.mu.Lock()
	s.keys[id] = k
	s.mu.Unlock()
	return k.Key
}

// CreateAlias points alias ("alias/NAME") at a key.
func (s *Server) CreateAlias(alias, keyID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aliases[alias] = keyID
}

// AliasARN returns the ARN of an alias in this server's region and account.
func (s *Server) AliasARN(alias string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:%s", s.region, Account, alias)
}

// SetEnabled enables or disables a key (DisableKey / EnableKey).
func (s *Server) SetEnabled(keyID string, enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.keys[keyID]; k != nil {
		k.enabled = enabled
	}
}

// Throttle makes the next n authenticated calls fail with ThrottlingException (HTTP 400).
func (s *Server) Throttle(n int) { s.FailNext(n, http.StatusBadRequest, "ThrottlingException") }

// FailNext makes the next n authenticated calls fail with the given status and __type,
// e.g. 500 KMSInternalException or 503 DependencyTimeoutException.
func (s *Server) FailNext(n, status int, errType string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{status, errType})
	}
}

// Calls returns how many requests named the operation ("Encrypt", "Decrypt", ...),
// failed ones included.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Rejected returns how many requests failed authentication (missing or bad SigV4).
func (s *Server) Rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "UnknownOperationException", "only POST is served")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "SerializationException", "request body too large or unreadable")
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if !ok || op == "" {
		writeError(w, http.StatusBadRequest, "UnknownOperationException", "missing or foreign X-Amz-Target")
		return
	}
	s.mu.Lock()
	s.calls[op]++
	s.mu.Unlock()

	if aerr := s.verifySigV4(r, body, s.now()); aerr != nil {
		s.mu.Lock()
		s.rejected++
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, aerr.typ, aerr.msg)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != contentType {
		writeError(w, http.StatusBadRequest, "SerializationException", "Content-Type must be "+contentType)
		return
	}
	s.mu.Lock()
	var fail *failure
	if len(s.failures) > 0 {
		fail = &s.failures[0]
		s.failures = s.failures[1:]
	}
	s.mu.Unlock()
	if fail != nil {
		writeError(w, fail.status, fail.typ, "injected failure")
		return
	}

	var out any
	var kerr *kmsError
	switch op {
	case "Encrypt":
		out, kerr = decodeAnd(body, s.encrypt)
	case "Decrypt":
		out, kerr = decodeAnd(body, s.decrypt)
	case "DescribeKey":
		out, kerr = decodeAnd(body, s.describeKey)
	case "GenerateRandom":
		out, kerr = decodeAnd(body, s.generateRandom)
	default:
		kerr = &kmsError{http.StatusBadRequest, "UnknownOperationException", "operation " + op + " is not served by awskmstest"}
	}
	if kerr != nil {
		writeError(w, kerr.status, kerr.typ, kerr.msg)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-Requestid", requestID())
	_ = json.NewEncoder(w).Encode(out)
}

type kmsError struct {
	status int
	typ    string
	msg    string
}

func badRequest(typ, format string, args ...any) *kmsError {
	return &kmsError{http.StatusBadRequest, typ, fmt.Sprintf(format, args...)}
}

func decodeAnd[In, Out any](body []byte, f func(*In) (*Out, *kmsError)) (any, *kmsError) {
	in := new(In)
	if err := json.Unmarshal(body, in); err != nil {
		return nil, badRequest("SerializationException", "cannot decode the request body")
	}
	return f(in)
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-Requestid", requestID())
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

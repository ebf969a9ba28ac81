// Package gcpkmstest is a protocol-faithful local Cloud KMS for tests: a gRPC server that
// implements the KeyManagementService's Encrypt and Decrypt with the generated kmspb
// server interface. Keys are real AES-256-GCM keys with versions; additional authenticated
// data and the CRC32C integrity fields are checked the way Cloud KMS checks them, and
// failures come back with the codes and messages Cloud KMS uses (INVALID_ARGUMENT
// "Decryption failed: …", FAILED_PRECONDITION for a disabled version, NOT_FOUND,
// UNAUTHENTICATED). Every other RPC answers UNIMPLEMENTED.
package gcpkmstest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Config shapes a server.
type Config struct {
	// TLS serves gRPC over TLS with this configuration (plain gRPC when nil).
	TLS *tls.Config
	// Token, when set, is the bearer token every call must carry ("authorization" metadata);
	// UNAUTHENTICATED otherwise.
	Token string
}

// Server is a running fake Cloud KMS.
type Server struct {
	kmspb.UnimplementedKeyManagementServiceServer

	// Addr is host:port of the listener.
	Addr string

	cfg  Config
	srv  *grpc.Server
	mu   sync.Mutex
	keys map[string]*cryptoKey

	calls     sync.Map // method -> *atomic.Int64
	failNext  atomic.Int64
	failCode  atomic.Int32
	corrupt   atomic.Int64
	unauthent atomic.Int64
}

type cryptoKey struct {
	tag      [8]byte // names the key inside its ciphertexts (Cloud KMS embeds its own id)
	versions []*keyVersion
	primary  int // index into versions
}

type keyVersion struct {
	aead    cipher.AEAD
	enabled bool
}

// NewServer starts a server on 127.0.0.1 and stops it when the test ends.
func NewServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s := &Server{Addr: l.Addr().String(), cfg: cfg, srv: grpc.NewServer(opts...), keys: map[string]*cryptoKey{}}
	kmspb.RegisterKeyManagementServiceServer(s.srv, s)
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(s.srv.Stop)
	return s
}

// URI is the gcpkms:// URI of key on this (plain gRPC) server.
func (s *Server) URI(key string) string {
	return "gcpkms://" + key + "?endpoint=http://" + s.Addr
}

var keySeq atomic.Int64

// CreateKey makes a CryptoKey with one enabled primary version and returns its name.
func (s *Server) CreateKey(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("projects/authpipe-test/locations/europe-west1/keyRings/authpipe/cryptoKeys/kek-%d", keySeq.Add(1))
	k := &cryptoKey{}
	if _, err := rand.Read(k.tag[:]); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.keys[name] = k
	s.mu.Unlock()
	s.RotateKey(t, name)
	return name
}

// RotateKey adds a version to key and makes it primary (gcloud kms keys versions create
// --primary); it returns the new version's id.
func (s *Server) RotateKey(t testing.TB, key string) string {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[key]
	k.versions = append(k.versions, &keyVersion{aead: aead, enabled: true})
	k.primary = len(k.versions) - 1
	return strconv.Itoa(len(k.versions))
}

// SetEnabled enables or disables one version ("1", "2", …) of key.
func (s *Server) SetEnabled(key, version string, enabled bool) {
	n, _ := strconv.Atoi(version)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key].versions[n-1].enabled = enabled
}

// FailNext makes the next n calls fail with code before doing anything.
func (s *Server) FailNext(n int, code codes.Code) {
	s.failCode.Store(int32(code))
	s.failNext.Store(int64(n))
}

// CorruptNext flips a bit of the next n responses' ciphertext or plaintext after their
// checksum was computed, as a corruption in transit would.
func (s *Server) CorruptNext(n int) { s.corrupt.Store(int64(n)) }

// Calls counts the calls of one method ("Encrypt", "Decrypt").
func (s *Server) Calls(method string) int64 {
	if v, ok := s.calls.Load(method); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// Unauthenticated counts calls refused for a missing or wrong token.
func (s *Server) Unauthenticated() int64 { return s.unauthent.Load() }

func (s *Server) begin(ctx context.Context, method string) error {
	v, _ := s.calls.LoadOrStore(method, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	if s.failNext.Load() > 0 && s.failNext.Add(-1) >= 0 {
		return status.Error(codes.Code(s.failCode.Load()), "injected failure")
	}
	if s.cfg.Token != "" {
		md, _ := metadata.FromIncomingContext(ctx)
		got := ""
		if v := md.Get("authorization"); len(v) == 1 {
			got = v[0]
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+s.cfg.Token)) != 1 {
			s.unauthent.Add(1)
			return status.Error(codes.Unauthenticated, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
		}
	}
	return nil
}

func (s *Server) takeCorrupt() bool { return s.corrupt.Load() > 0 && s.corrupt.Add(-1) >= 0 }

// Limits Cloud KMS applies.
const (
	maxPlaintext = 64 * 1024
	maxAAD       = 64 * 1024
	// ciphertext: key tag (8) | version (4) | nonce (12) | sealed
	headerLen = 8 + 4 + 12
)

// lookup finds a CryptoKey by its resource name.
func (s *Server) lookup(name string) (*cryptoKey, error) {
	if strings.Contains(name, "/cryptoKeyVersions/") {
		return nil, status.Errorf(codes.InvalidArgument, "The request name %q is not a CryptoKey resource name.", name)
	}
	k, ok := s.keys[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "CryptoKey %s not found.", name)
	}
	return k, nil
}

func checkCRC(field, dataField string, data []byte, sum *wrapperspb.Int64Value) error {
	if sum != nil && sum.GetValue() != int64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))) {
		return status.Errorf(codes.InvalidArgument, "The checksum in field %s did not match the data in field %s.", field, dataField)
	}
	return nil
}

func crc(b []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))))
}

// Encrypt implements kmspb.KeyManagementServiceServer.
func (s *Server) Encrypt(ctx context.Context, req *kmspb.EncryptRequest) (*kmspb.EncryptResponse, error) {
	if err := s.begin(ctx, "Encrypt"); err != nil {
		return nil, err
	}
	if len(req.GetPlaintext()) == 0 || len(req.GetPlaintext()) > maxPlaintext || len(req.GetAdditionalAuthenticatedData()) > maxAAD {
		return nil, status.Error(codes.InvalidArgument, "The plaintext or additional authenticated data is empty or too long.")
	}
	if err := checkCRC("plaintext_crc32c", "plaintext", req.GetPlaintext(), req.GetPlaintextCrc32C()); err != nil {
		return nil, err
	}
	if err := checkCRC("additional_authenticated_data_crc32c", "additional_authenticated_data", req.GetAdditionalAuthenticatedData(), req.GetAdditionalAuthenticatedDataCrc32C()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	k, err := s.lookup(req.GetName())
	var (
		v   *keyVersion
		num int
		tag [8]byte
	)
	if err == nil {
		num, v, tag = k.primary+1, k.versions[k.primary], k.tag
	}
	enabled := v != nil && v.enabled
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	versionName := fmt.Sprintf("%s/cryptoKeyVersions/%d", req.GetName(), num)
	if !enabled {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not enabled, current state is: DISABLED.", versionName)
	}
	ct := make([]byte, headerLen, headerLen+len(req.GetPlaintext())+16)
	copy(ct, tag[:])
	binary.BigEndian.PutUint32(ct[8:], uint32(num))
	if _, err := rand.Read(ct[12:headerLen]); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	ct = v.aead.Seal(ct, ct[12:headerLen], req.GetPlaintext(), gcmAAD(ct[:12], req.GetAdditionalAuthenticatedData()))
	sum := crc(ct)
	if s.takeCorrupt() {
		ct[len(ct)-1] ^= 1
	}
	return &kmspb.EncryptResponse{
		Name:                    versionName,
		Ciphertext:              ct,
		CiphertextCrc32C:        sum,
		VerifiedPlaintextCrc32C: req.GetPlaintextCrc32C() != nil,
		VerifiedAdditionalAuthenticatedDataCrc32C: req.GetAdditionalAuthenticatedDataCrc32C() != nil,
		ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
	}, nil
}

// gcmAAD binds the ciphertext header and the caller's AAD.
func gcmAAD(header, aad []byte) []byte {
	return append(append(append([]byte{}, header...), 0), aad...)
}

// Decrypt implements kmspb.KeyManagementServiceServer.
func (s *Server) Decrypt(ctx context.Context, req *kmspb.DecryptRequest) (*kmspb.DecryptResponse, error) {
	if err := s.begin(ctx, "Decrypt"); err != nil {
		return nil, err
	}
	ct := req.GetCiphertext()
	if len(ct) == 0 {
		return nil, status.Error(codes.InvalidArgument, "The ciphertext is empty.")
	}
	if err := checkCRC("ciphertext_crc32c", "ciphertext", ct, req.GetCiphertextCrc32C()); err != nil {
		return nil, err
	}
	if err := checkCRC("additional_authenticated_data_crc32c", "additional_authenticated_data", req.GetAdditionalAuthenticatedData(), req.GetAdditionalAuthenticatedDataCrc32C()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	k, err := s.lookup(req.GetName())
	var v *keyVersion
	num, primary := 0, 0
	if err == nil {
		primary = k.primary + 1
	}
	if err == nil && len(ct) > headerLen {
		if subtle.ConstantTimeCompare(ct[:8], k.tag[:]) != 1 {
			err = status.Error(codes.InvalidArgument, "Decryption failed: verify that 'name' refers to the correct CryptoKey.")
		} else if num = int(binary.BigEndian.Uint32(ct[8:12])); num >= 1 && num <= len(k.versions) {
			v = k.versions[num-1]
		}
	}
	enabled := v != nil && v.enabled
	s.mu.Unlock()
	switch {
	case err != nil:
		return nil, err
	case v == nil:
		return nil, status.Error(codes.InvalidArgument, "Decryption failed: the ciphertext is invalid.")
	case !enabled:
		return nil, status.Errorf(codes.FailedPrecondition, "%s/cryptoKeyVersions/%d is not enabled, current state is: DISABLED.", req.GetName(), num)
	}
	pt, err := v.aead.Open(nil, ct[12:headerLen], ct[headerLen:], gcmAAD(ct[:12], req.GetAdditionalAuthenticatedData()))
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "Decryption failed: the ciphertext is invalid.")
	}
	sum := crc(pt)
	if s.takeCorrupt() {
		pt[0] ^= 1
	}
	return &kmspb.DecryptResponse{
		Plaintext:       pt,
		PlaintextCrc32C: sum,
		UsedPrimary:     num == primary,
		ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
	}, nil
}

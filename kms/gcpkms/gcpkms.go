package gcpkms

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync/atomic"
	"time"

	kmsapi "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/authpipe/authpipe-proxy/kms"
)

// Defaults.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultMaxAttempts = 3
	DefaultMaxBackoff  = time.Second
)

// The additional authenticated data prefixes (see the package doc).
const (
	aadPrefix = "authpipe:v1:"
	pingAAD   = "authpipe:ping"
)

// API is the part of the Cloud KMS client this backend calls (*kms.KeyManagementClient
// satisfies it).
type API interface {
	Encrypt(ctx context.Context, req *kmspb.EncryptRequest, opts ...gax.CallOption) (*kmspb.EncryptResponse, error)
	Decrypt(ctx context.Context, req *kmspb.DecryptRequest, opts ...gax.CallOption) (*kmspb.DecryptResponse, error)
}

var _ API = (*kmsapi.KeyManagementClient)(nil)

// Backend is a KEK held in Google Cloud KMS. It is safe for concurrent use.
type Backend struct {
	client   API
	key      string
	id       string
	timeout  time.Duration
	callOpts []gax.CallOption
	closers  []func() error
	closed   atomic.Bool
}

var _ kms.KEK = (*Backend)(nil)

// Option configures New.
type Option func(*Backend)

// WithTimeout bounds each Wrap, Unwrap and Ping, retries included (default 5s).
func WithTimeout(d time.Duration) Option { return func(b *Backend) { b.timeout = d } }

// withRetry sets the retry policy of every call.
func withRetry(attempts int, maxBackoff time.Duration) Option {
	return func(b *Backend) {
		b.callOpts = []gax.CallOption{gax.WithRetry(func() gax.Retryer {
			return &retryer{max: attempts, maxBackoff: maxBackoff}
		})}
	}
}

// New returns a backend over an existing client; key is the CryptoKey's resource name.
func New(client API, key string, opts ...Option) (*Backend, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: gcpkms: nil client", kms.ErrConfig)
	}
	if err := checkKeyName(key); err != nil {
		return nil, err
	}
	b := &Backend{client: client, key: key, id: Scheme + ":" + key, timeout: DefaultTimeout}
	withRetry(DefaultMaxAttempts, DefaultMaxBackoff)(b)
	for _, o := range opts {
		o(b)
	}
	if b.timeout <= 0 {
		return nil, fmt.Errorf("%w: gcpkms: timeout must be positive", kms.ErrConfig)
	}
	return b, nil
}

// Options control Open.
type Options struct {
	// Timeout bounds each call, retries included (default DefaultTimeout).
	Timeout time.Duration
	// MaxAttempts bounds the attempts of one call, the first included (default 3).
	MaxAttempts int
	// MaxBackoff caps the full-jitter retry backoff (default 1s).
	MaxBackoff time.Duration
	// ClientOptions are passed to the Cloud KMS client after this package's own (tests use
	// them for TLS roots and a static token).
	ClientOptions []option.ClientOption
}

// Open connects to the key a gcpkms:// URI names. It makes no KMS call: use Ping to check
// that the key is usable.
func Open(ctx context.Context, uri string, opts Options) (*Backend, error) {
	cfg, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.Timeout < 0 || opts.MaxAttempts < 1 || opts.MaxBackoff < 0 {
		return nil, fmt.Errorf("%w: gcpkms: timeout, attempts and backoff must be positive", kms.ErrConfig)
	}
	var copts []option.ClientOption
	var closers []func() error
	switch {
	case cfg.Insecure:
		// A loopback test server: plain gRPC, and so no credential at all.
		conn, err := grpc.NewClient(cfg.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("%w: gcpkms: endpoint: %w", kms.ErrConfig, err)
		}
		closers = append(closers, func() error {
			// The client may have closed it already (it does for WithGRPCConn today).
			if err := conn.Close(); status.Code(err) != codes.Canceled {
				return err
			}
			return nil
		})
		copts = append(copts, option.WithGRPCConn(conn))
	case cfg.Endpoint != "":
		copts = append(copts, option.WithEndpoint(cfg.Endpoint))
	}
	client, err := kmsapi.NewKeyManagementClient(ctx, append(copts, opts.ClientOptions...)...)
	if err != nil {
		for _, c := range closers {
			_ = c()
		}
		return nil, fmt.Errorf("%w: gcpkms: Cloud KMS client (Application Default Credentials): %w", kms.ErrConfig, err)
	}
	b, err := New(client, cfg.Key, WithTimeout(opts.Timeout), withRetry(opts.MaxAttempts, opts.MaxBackoff))
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	b.closers = append([]func() error{client.Close}, closers...)
	return b, nil
}

// ID implements kms.KEK: "gcpkms:" and the CryptoKey's resource name.
func (b *Backend) ID() string { return b.id }

// Key returns the CryptoKey's resource name.
func (b *Backend) Key() string { return b.key }

// errIntegrity marks a checksum or response-name mismatch: data corrupted in transit.
var errIntegrity = errors.New("gcpkms: integrity check failed")

// Wrap implements kms.KEK with Cloud KMS Encrypt.
func (b *Backend) Wrap(ctx context.Context, dek, aad []byte) (kms.WrappedKey, error) {
	if err := b.usable(); err != nil {
		return kms.WrappedKey{}, err
	}
	if len(dek) != kms.DEKSize {
		return kms.WrappedKey{}, fmt.Errorf("gcpkms: wrap: DEK must be %d bytes, got %d", kms.DEKSize, len(dek))
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	ct, version, err := b.encrypt(ctx, dek, boundAAD(aad))
	if err != nil {
		return kms.WrappedKey{}, mapError("wrap", err)
	}
	return kms.WrappedKey{KEKID: b.id, KEKVersion: version, Ciphertext: ct}, nil
}

// encrypt calls Encrypt and checks the integrity fields, retrying once on a mismatch.
func (b *Backend) encrypt(ctx context.Context, plaintext, aad []byte) (ct []byte, version string, err error) {
	for range 2 {
		var out *kmspb.EncryptResponse
		out, err = b.client.Encrypt(ctx, &kmspb.EncryptRequest{
			Name:                              b.key,
			Plaintext:                         plaintext,
			AdditionalAuthenticatedData:       aad,
			PlaintextCrc32C:                   crc(plaintext),
			AdditionalAuthenticatedDataCrc32C: crc(aad),
		}, b.callOpts...)
		if err != nil {
			return nil, "", err
		}
		version, ok := strings.CutPrefix(out.GetName(), b.key+"/cryptoKeyVersions/")
		switch {
		case !out.GetVerifiedPlaintextCrc32C() || !out.GetVerifiedAdditionalAuthenticatedDataCrc32C():
			err = fmt.Errorf("%w: Cloud KMS did not verify the request's checksums", errIntegrity)
		case !ok || version == "" || strings.Contains(version, "/"):
			err = fmt.Errorf("%w: the response names %q, not a version of the configured key", errIntegrity, out.GetName())
		case len(out.GetCiphertext()) == 0 || !crcMatches(out.GetCiphertext(), out.GetCiphertextCrc32C()):
			err = fmt.Errorf("%w: ciphertext_crc32c does not match the ciphertext received", errIntegrity)
		default:
			return out.GetCiphertext(), version, nil
		}
	}
	return nil, "", err
}

// Unwrap implements kms.KEK with Cloud KMS Decrypt on the CryptoKey: Cloud KMS finds the
// version from the ciphertext.
func (b *Backend) Unwrap(ctx context.Context, w kms.WrappedKey, aad []byte) ([]byte, error) {
	if w.KEKID != b.id {
		return nil, fmt.Errorf("%w: %q is not %q", kms.ErrUnknownKey, w.KEKID, b.id)
	}
	if err := b.usable(); err != nil {
		return nil, err
	}
	if len(w.Ciphertext) == 0 {
		return nil, fmt.Errorf("%w: gcpkms: empty ciphertext", kms.ErrDecrypt)
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	bound := boundAAD(aad)
	var (
		out *kmspb.DecryptResponse
		err error
	)
	for range 2 {
		out, err = b.client.Decrypt(ctx, &kmspb.DecryptRequest{
			Name:                              b.key,
			Ciphertext:                        w.Ciphertext,
			AdditionalAuthenticatedData:       bound,
			CiphertextCrc32C:                  crc(w.Ciphertext),
			AdditionalAuthenticatedDataCrc32C: crc(bound),
		}, b.callOpts...)
		if err != nil {
			return nil, mapError("unwrap", err)
		}
		if crcMatches(out.GetPlaintext(), out.GetPlaintextCrc32C()) {
			break
		}
		clear(out.GetPlaintext())
		out, err = nil, fmt.Errorf("%w: plaintext_crc32c does not match the plaintext received", errIntegrity)
	}
	if err != nil {
		return nil, mapError("unwrap", err)
	}
	if len(out.GetPlaintext()) != kms.DEKSize {
		clear(out.GetPlaintext())
		return nil, fmt.Errorf("%w: gcpkms: unwrapped key is not %d bytes", kms.ErrDecrypt, kms.DEKSize)
	}
	return out.GetPlaintext(), nil
}

// Ping implements kms.KEK: it encrypts one byte under an AAD no DEK ever uses, which checks
// the credentials, the encrypter role and that the primary version is enabled.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.usable(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if _, _, err := b.encrypt(ctx, []byte{0}, []byte(pingAAD)); err != nil {
		return mapError("ping", err)
	}
	return nil
}

// Close implements kms.KEK: it closes the gRPC connection; later calls fail.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, c := range b.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

func (b *Backend) usable() error {
	if b.closed.Load() {
		return errors.New("gcpkms: backend is closed")
	}
	return nil
}

// boundAAD is the additional authenticated data sent for aad: never empty, and never the
// ping's.
func boundAAD(aad []byte) []byte {
	return append([]byte(aadPrefix), aad...)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C is the checksum Cloud KMS's *_crc32c fields carry.
func CRC32C(b []byte) int64 { return int64(crc32.Checksum(b, castagnoli)) }

func crc(b []byte) *wrapperspb.Int64Value { return wrapperspb.Int64(CRC32C(b)) }

func crcMatches(b []byte, sum *wrapperspb.Int64Value) bool {
	return sum != nil && sum.GetValue() == CRC32C(b)
}

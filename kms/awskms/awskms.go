// Package awskms is the AWS KMS key-encryption key: a symmetric KMS key (SYMMETRIC_DEFAULT,
// AES-256-GCM inside the KMS HSMs) that wraps the vault's data keys with the KMS Encrypt
// and Decrypt operations. The key material never leaves KMS.
//
// URI: awskms://<key>[?region=R][&endpoint=URL], where <key> is a key id, alias/NAME, a
// key ARN or an alias ARN (an ARN carries its region). endpoint overrides the KMS endpoint
// for a VPC interface endpoint (https) or a local test server (http to loopback only).
// Credentials come from the SDK's default chain (environment, shared files, web identity
// for EKS IRSA, ECS and EC2 instance roles). The principal needs kms:Encrypt and
// kms:Decrypt on the key, nothing else.
//
// Associated data is bound as the KMS encryption context {"authpipe:aad": "v1:"+base64(aad)}.
// The entry is sent even for an empty aad, so a ciphertext made without context never
// opens. The encryption context is logged in plain text by CloudTrail: the vault's aad
// (workspace id and purpose) is not secret.
//
// Errors: InvalidCiphertextException and IncorrectKeyException are kms.ErrDecrypt; every
// other failure — network errors, timeouts, throttling and 5xx after the SDK's bounded
// retries, and also a disabled, deleted or inaccessible key (DisabledException,
// NotFoundException, KMSInvalidStateException, AccessDeniedException) — is
// kms.ErrUnavailable. From the proxy's side a key that cannot be used now is an outage
// to fail closed on (503), not a reason to consider the wrapped DEK corrupt.
//
// KMS rotates key material under the same key ARN and keeps the old material for
// decryption, so WrappedKey.KEKVersion is "" and automatic rotation needs no re-wrap.
package awskms

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/authpipe/authpipe-proxy/kms"
)

// Defaults.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultMaxAttempts = 3
	DefaultMaxBackoff  = time.Second

	baseBackoff = 100 * time.Millisecond
)

// EncryptionContextKey is the encryption-context entry that carries the associated data.
const EncryptionContextKey = "authpipe:aad"

const (
	contextVersion = "v1:"
	pingContextKey = "authpipe:ping"
)

// KMSAPI is the part of the KMS client this backend calls (*kms.Client satisfies it).
type KMSAPI interface {
	Encrypt(ctx context.Context, in *kmssdk.EncryptInput, optFns ...func(*kmssdk.Options)) (*kmssdk.EncryptOutput, error)
	Decrypt(ctx context.Context, in *kmssdk.DecryptInput, optFns ...func(*kmssdk.Options)) (*kmssdk.DecryptOutput, error)
}

var _ KMSAPI = (*kmssdk.Client)(nil)

// Backend is a KEK held in AWS KMS. It is safe for concurrent use.
type Backend struct {
	client  KMSAPI
	key     string
	id      string
	timeout time.Duration
	idle    interface{ CloseIdleConnections() }
	closed  atomic.Bool
}

var _ kms.KEK = (*Backend)(nil)

// Option configures New.
type Option func(*Backend)

// WithTimeout bounds each Wrap, Unwrap and Ping, retries included (default 5s).
func WithTimeout(d time.Duration) Option { return func(b *Backend) { b.timeout = d } }

// New returns a backend over an existing client; keyID is a key id, alias/NAME or ARN.
func New(client KMSAPI, keyID string, opts ...Option) (*Backend, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: awskms: nil client", kms.ErrConfig)
	}
	if _, err := checkKey(keyID); err != nil {
		return nil, err
	}
	b := &Backend{client: client, key: keyID, id: Scheme + ":" + keyID, timeout: DefaultTimeout}
	for _, o := range opts {
		o(b)
	}
	if b.timeout <= 0 {
		return nil, fmt.Errorf("%w: awskms: timeout must be positive", kms.ErrConfig)
	}
	return b, nil
}

// Options control Open.
type Options struct {
	// Timeout bounds each call, retries included (default DefaultTimeout).
	Timeout time.Duration
	// MaxAttempts is the SDK retryer's attempt limit, first try included (default 3).
	MaxAttempts int
	// MaxBackoff caps the retry backoff, which is drawn uniformly from
	// [0, min(MaxBackoff, 100ms·2^retry)) (default 1s).
	MaxBackoff time.Duration
	// Logger receives the SDK's retry and deprecation logs (default: discarded).
	Logger *slog.Logger
	// LoadOptions are passed to config.LoadDefaultConfig after this package's own
	// (tests use them for static credentials).
	LoadOptions []func(*config.LoadOptions) error
}

// Open connects to the key an awskms:// URI names. It makes no KMS call: use Ping to
// check that the key is usable.
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
		return nil, fmt.Errorf("%w: awskms: timeout, attempts and backoff must be positive", kms.ErrConfig)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	load := []func(*config.LoadOptions) error{
		config.WithHTTPClient(newHTTPClient(opts.Timeout)),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.MaxAttempts
				o.MaxBackoff = opts.MaxBackoff
				o.Backoff = fullJitter{base: baseBackoff, max: opts.MaxBackoff}
			})
		}),
		config.WithLogger(slogLogger{opts.Logger}),
	}
	if cfg.Region != "" {
		load = append(load, config.WithRegion(cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, append(load, opts.LoadOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: awskms: load AWS config: %w", kms.ErrConfig, err)
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("%w: awskms: no region: use an ARN, ?region= or AWS_REGION", kms.ErrConfig)
	}
	// Freeze the client (after the config has applied AWS_CA_BUNDLE to it) so that Close
	// can drop its idle connections.
	var idle interface{ CloseIdleConnections() }
	if bc, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient); ok {
		awsCfg.HTTPClient = bc.Freeze()
		idle, _ = awsCfg.HTTPClient.(interface{ CloseIdleConnections() })
	}
	client := kmssdk.NewFromConfig(awsCfg, func(o *kmssdk.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	b, err := New(client, cfg.Key, WithTimeout(opts.Timeout))
	if err != nil {
		return nil, err
	}
	b.idle = idle
	return b, nil
}

// newHTTPClient bounds each phase of a request so that an unreachable endpoint fails
// within the call timeout even before the context deadline. It is the SDK's buildable
// client, so that AWS_CA_BUNDLE (a private CA for a VPC endpoint) still applies.
func newHTTPClient(timeout time.Duration) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = min(timeout, 2*time.Second) }).
		WithTransportOptions(func(t *http.Transport) {
			t.TLSHandshakeTimeout = min(timeout, 3*time.Second)
			t.ResponseHeaderTimeout = timeout
			t.MaxIdleConnsPerHost = 64
		})
}

// ID implements kms.KEK: "awskms:" and the key as configured.
func (b *Backend) ID() string { return b.id }

// Key returns the key id, alias or ARN as configured.
func (b *Backend) Key() string { return b.key }

// Wrap implements kms.KEK with KMS Encrypt.
func (b *Backend) Wrap(ctx context.Context, dek, aad []byte) (kms.WrappedKey, error) {
	if err := b.usable(); err != nil {
		return kms.WrappedKey{}, err
	}
	if len(dek) != kms.DEKSize {
		return kms.WrappedKey{}, fmt.Errorf("awskms: wrap: DEK must be %d bytes, got %d", kms.DEKSize, len(dek))
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	out, err := b.client.Encrypt(ctx, &kmssdk.EncryptInput{
		KeyId:               aws.String(b.key),
		Plaintext:           dek,
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
		EncryptionContext:   encryptionContext(aad),
	})
	if err != nil {
		return kms.WrappedKey{}, mapError("wrap", err)
	}
	if len(out.CiphertextBlob) == 0 {
		return kms.WrappedKey{}, fmt.Errorf("%w: awskms: wrap: empty ciphertext in the KMS response", kms.ErrUnavailable)
	}
	return kms.WrappedKey{KEKID: b.id, Ciphertext: out.CiphertextBlob}, nil
}

// Unwrap implements kms.KEK with KMS Decrypt, naming the key so that a ciphertext made
// under another key fails (IncorrectKeyException) instead of being opened by it.
func (b *Backend) Unwrap(ctx context.Context, w kms.WrappedKey, aad []byte) ([]byte, error) {
	if w.KEKID != b.id {
		return nil, fmt.Errorf("%w: %q is not %q", kms.ErrUnknownKey, w.KEKID, b.id)
	}
	if err := b.usable(); err != nil {
		return nil, err
	}
	if len(w.Ciphertext) == 0 {
		return nil, fmt.Errorf("%w: awskms: empty ciphertext", kms.ErrDecrypt)
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	out, err := b.client.Decrypt(ctx, &kmssdk.DecryptInput{
		KeyId:               aws.String(b.key),
		CiphertextBlob:      w.Ciphertext,
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
		EncryptionContext:   encryptionContext(aad),
	})
	if err != nil {
		return nil, mapError("unwrap", err)
	}
	if len(out.Plaintext) != kms.DEKSize {
		clear(out.Plaintext)
		return nil, fmt.Errorf("%w: awskms: unwrapped key is not %d bytes", kms.ErrDecrypt, kms.DEKSize)
	}
	return out.Plaintext, nil
}

// Ping implements kms.KEK: it encrypts one byte under a context no DEK ever uses, which
// checks the credentials, the kms:Encrypt permission and that the key is enabled.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.usable(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	_, err := b.client.Encrypt(ctx, &kmssdk.EncryptInput{
		KeyId:             aws.String(b.key),
		Plaintext:         []byte{0},
		EncryptionContext: map[string]string{pingContextKey: contextVersion},
	})
	if err != nil {
		return mapError("ping", err)
	}
	return nil
}

// Close implements kms.KEK: it drops idle connections; later calls fail.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	if b.idle != nil {
		b.idle.CloseIdleConnections()
	}
	return nil
}

func (b *Backend) usable() error {
	if b.closed.Load() {
		return errors.New("awskms: backend is closed")
	}
	return nil
}

// encryptionContext binds aad. The value is never empty, and base64 keeps distinct aads
// distinct (the context is a string map; aad is bytes).
func encryptionContext(aad []byte) map[string]string {
	return map[string]string{EncryptionContextKey: contextVersion + base64.StdEncoding.EncodeToString(aad)}
}

package azurekv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/authpipe/authpipe-proxy/kms"
)

// Defaults.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultMaxRetries = 2
)

// The wrapped structure: DEK ‖ nonce ‖ SHA-256(aadDomain ‖ 0 ‖ aad) (see the package doc).
const (
	nonceSize   = 16
	hashSize    = sha256.Size
	payloadSize = kms.DEKSize + nonceSize + hashSize // 80: a multiple of 8 for AES key wrap
	aadDomain   = "authpipe:azurekv:v1"
)

// API is the part of the Key Vault keys client this backend calls (*azkeys.Client
// satisfies it).
type API interface {
	WrapKey(ctx context.Context, name, version string, p azkeys.KeyOperationParameters, o *azkeys.WrapKeyOptions) (azkeys.WrapKeyResponse, error)
	UnwrapKey(ctx context.Context, name, version string, p azkeys.KeyOperationParameters, o *azkeys.UnwrapKeyOptions) (azkeys.UnwrapKeyResponse, error)
}

var _ API = (*azkeys.Client)(nil)

// Backend is a KEK held in Azure Key Vault or a Managed HSM. It is safe for concurrent use.
type Backend struct {
	client  API
	cfg     Config
	alg     azkeys.EncryptionAlgorithm
	id      string
	timeout time.Duration
	closed  atomic.Bool
}

var _ kms.KEK = (*Backend)(nil)

// Options control Open.
type Options struct {
	// Timeout bounds each call, retries and the token request included (default 5s).
	Timeout time.Duration
	// MaxRetries is the number of retries after the first try (default 2; -1: none).
	MaxRetries int32
	// Credential replaces azidentity.NewDefaultAzureCredential (tests).
	Credential azcore.TokenCredential
	// Transport replaces the HTTP client (tests: one that trusts the test server).
	Transport policy.Transporter
}

// Open connects to the key an azurekv:// URI names. It makes no Key Vault call: use Ping
// to check that the key is usable.
func Open(_ context.Context, uri string, opts Options) (*Backend, error) {
	cfg, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("%w: azurekv: timeout must be positive", kms.ErrConfig)
	}
	if opts.Transport == nil {
		opts.Transport = newHTTPClient(opts.Timeout)
	}
	cred := opts.Credential
	if cred == nil {
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err != nil {
			return nil, fmt.Errorf("%w: azurekv: no Azure credential (workload identity, managed identity or environment): %w", kms.ErrConfig, err)
		}
	}
	client, err := azkeys.NewClient(cfg.VaultURL(), scopePinned{cred: cred, scope: "https://" + cfg.Domain + "/.default"}, &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: opts.Transport,
			Retry: policy.RetryOptions{
				MaxRetries:    opts.MaxRetries,
				RetryDelay:    100 * time.Millisecond,
				MaxRetryDelay: time.Second,
				TryTimeout:    opts.Timeout,
			},
		},
		// The challenge's resource must be the vault's domain; a loopback test server's
		// host cannot match, so it is not compared there. scopePinned still refuses a
		// token for any other resource, there and everywhere.
		DisableChallengeResourceVerification: cfg.Endpoint != "",
	})
	if err != nil {
		return nil, fmt.Errorf("%w: azurekv: %w", kms.ErrConfig, err)
	}
	return New(client, cfg, opts.Timeout)
}

// New returns a backend over an existing client for the key cfg names (see ParseURI).
func New(client API, cfg Config, timeout time.Duration) (*Backend, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: azurekv: nil client", kms.ErrConfig)
	}
	if !isKeyName(cfg.Name) || cfg.Host == "" || (cfg.Alg != AlgRSAOAEP256 && cfg.Alg != AlgA256KW) {
		return nil, fmt.Errorf("%w: azurekv: incomplete configuration", kms.ErrConfig)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%w: azurekv: timeout must be positive", kms.ErrConfig)
	}
	return &Backend{
		client: client, cfg: cfg, alg: azkeys.EncryptionAlgorithm(cfg.Alg),
		id: Scheme + ":" + cfg.Host + "/keys/" + cfg.Name, timeout: timeout,
	}, nil
}

// ID implements kms.KEK: "azurekv:<host>/keys/<name>". The version is not part of it: each
// wrapped DEK records its own (WrappedKey.KEKVersion).
func (b *Backend) ID() string { return b.id }

// Alg returns the wrap algorithm in use.
func (b *Backend) Alg() string { return b.cfg.Alg }

// Wrap implements kms.KEK with Key Vault wrapKey.
func (b *Backend) Wrap(ctx context.Context, dek, aad []byte) (kms.WrappedKey, error) {
	if err := b.usable(); err != nil {
		return kms.WrappedKey{}, err
	}
	if len(dek) != kms.DEKSize {
		return kms.WrappedKey{}, fmt.Errorf("azurekv: wrap: DEK must be %d bytes, got %d", kms.DEKSize, len(dek))
	}
	payload := make([]byte, payloadSize)
	defer clear(payload)
	copy(payload, dek)
	if _, err := rand.Read(payload[kms.DEKSize : kms.DEKSize+nonceSize]); err != nil {
		return kms.WrappedKey{}, err
	}
	copy(payload[kms.DEKSize+nonceSize:], aadHash(aad))
	ct, version, err := b.wrap(ctx, payload)
	if err != nil {
		return kms.WrappedKey{}, mapError("wrap", err)
	}
	return kms.WrappedKey{KEKID: b.id, KEKVersion: version, Ciphertext: ct}, nil
}

func (b *Backend) wrap(ctx context.Context, payload []byte) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	alg := b.alg
	out, err := b.client.WrapKey(ctx, b.cfg.Name, b.cfg.Version, azkeys.KeyOperationParameters{Algorithm: &alg, Value: payload}, nil)
	if err != nil {
		return nil, "", err
	}
	version := ""
	if out.KID != nil && out.KID.Name() == b.cfg.Name {
		version = out.KID.Version()
	}
	switch {
	case version == "" || (b.cfg.Version != "" && version != b.cfg.Version):
		return nil, "", fmt.Errorf("%w: the response's kid is not a version of %s", errResponse, b.cfg.Name)
	case len(out.Result) == 0:
		return nil, "", fmt.Errorf("%w: empty wrapped key", errResponse)
	}
	return out.Result, version, nil
}

// Unwrap implements kms.KEK with Key Vault unwrapKey on the version that wrapped w.
func (b *Backend) Unwrap(ctx context.Context, w kms.WrappedKey, aad []byte) ([]byte, error) {
	if w.KEKID != b.id {
		return nil, fmt.Errorf("%w: %q is not %q", kms.ErrUnknownKey, w.KEKID, b.id)
	}
	if err := b.usable(); err != nil {
		return nil, err
	}
	if len(w.Ciphertext) == 0 || !isVersion(w.KEKVersion) {
		return nil, fmt.Errorf("%w: azurekv: empty ciphertext or no key version recorded", kms.ErrDecrypt)
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	alg := b.alg
	out, err := b.client.UnwrapKey(ctx, b.cfg.Name, w.KEKVersion, azkeys.KeyOperationParameters{Algorithm: &alg, Value: w.Ciphertext}, nil)
	if err != nil {
		return nil, mapError("unwrap", err)
	}
	payload := out.Result
	defer clear(payload)
	if len(payload) != payloadSize {
		return nil, fmt.Errorf("%w: azurekv: unwrapped value is not %d bytes", kms.ErrDecrypt, payloadSize)
	}
	if subtle.ConstantTimeCompare(payload[kms.DEKSize+nonceSize:], aadHash(aad)) != 1 {
		return nil, fmt.Errorf("%w: azurekv: the wrapped key is bound to other associated data", kms.ErrDecrypt)
	}
	return append([]byte(nil), payload[:kms.DEKSize]...), nil
}

// Ping implements kms.KEK: it wraps a random value, which checks the credential, the
// wrapKey permission and that the key is enabled.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.usable(); err != nil {
		return err
	}
	probe := make([]byte, payloadSize)
	if _, err := rand.Read(probe); err != nil {
		return err
	}
	if _, _, err := b.wrap(ctx, probe); err != nil {
		return mapError("ping", err)
	}
	return nil
}

// Close implements kms.KEK; later calls fail.
func (b *Backend) Close() error {
	b.closed.Store(true)
	return nil
}

func (b *Backend) usable() error {
	if b.closed.Load() {
		return errors.New("azurekv: backend is closed")
	}
	return nil
}

func aadHash(aad []byte) []byte {
	h := sha256.New()
	h.Write([]byte(aadDomain))
	h.Write([]byte{0})
	h.Write(aad)
	return h.Sum(nil)
}

// scopePinned hands out tokens for one scope only, whatever a challenge asks for.
type scopePinned struct {
	cred  azcore.TokenCredential
	scope string
}

func (s scopePinned) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(o.Scopes) != 1 || o.Scopes[0] != s.scope {
		return azcore.AccessToken{}, fmt.Errorf("%w: Key Vault's challenge asked for a token for %q, not %q", errChallenge, o.Scopes, s.scope)
	}
	return s.cred.GetToken(ctx, o)
}

// newHTTPClient bounds each phase of a request so that an unreachable vault fails within
// the call timeout, and keeps enough idle connections for concurrent unwraps.
func newHTTPClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: min(timeout, 2*time.Second), KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = min(timeout, 3*time.Second)
	tr.ResponseHeaderTimeout = timeout
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr}
}

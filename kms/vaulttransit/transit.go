package vaulttransit

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/authpipe/authpipe-proxy/kms"
)

// Scheme is the URI scheme of this backend.
const Scheme = "vault-transit"

// Defaults for Config and the options.
const (
	DefaultTimeout      = 5 * time.Second
	DefaultMaxRetries   = 2
	DefaultMinRetryWait = 50 * time.Millisecond
	DefaultMaxRetryWait = 250 * time.Millisecond
)

// Config is what New needs.
type Config struct {
	// URI is the vault-transit:// URI of the key.
	URI string
	// Timeout bounds each call (login, encrypt, decrypt), retries included. 0 means
	// DefaultTimeout.
	Timeout time.Duration
}

// Option changes a default of New.
type Option func(*options)

type options struct {
	lookup       LookupEnv
	logger       *slog.Logger
	now          func() time.Time
	maxRetries   int
	minRetryWait time.Duration
	maxRetryWait time.Duration
}

// WithLookupEnv sets where VAULT_* variables come from (os.LookupEnv by default).
func WithLookupEnv(f LookupEnv) Option { return func(o *options) { o.lookup = f } }

// WithLogger sets the logger (discarded by default). Nothing secret is logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithClock sets the clock used for token expiry (time.Now by default).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithRetries sets how often a failed request (network error, 429, 5xx) is retried,
// 0 to 2, and the linear jittered backoff between tries.
func WithRetries(max int, minWait, maxWait time.Duration) Option {
	return func(o *options) { o.maxRetries, o.minRetryWait, o.maxRetryWait = max, minWait, maxWait }
}

// Backend is a Transit key used as a KEK.
type Backend struct {
	id          string
	target      Target
	timeout     time.Duration
	client      *api.Client // carries the token
	loginClient *api.Client // never carries a token
	auth        authMethod
	log         *slog.Logger
	now         func() time.Time

	authMu    sync.Mutex
	tokenGen  uint64    // bumped on every login
	refreshAt time.Time // zero: never

	probeMu  sync.Mutex
	aadBound bool // Vault has been seen to enforce associated_data
}

var _ kms.KEK = (*Backend)(nil)

// Open is New with only a URI.
func Open(uri string, opts ...Option) (*Backend, error) {
	return New(Config{URI: uri}, opts...)
}

// New validates cfg and the VAULT_* environment and builds the client. It does no I/O:
// Vault may be down when the process starts; Ping tells readiness.
func New(cfg Config, opts ...Option) (*Backend, error) {
	o := options{
		lookup:       os.LookupEnv,
		now:          time.Now,
		maxRetries:   DefaultMaxRetries,
		minRetryWait: DefaultMinRetryWait,
		maxRetryWait: DefaultMaxRetryWait,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.lookup == nil || o.now == nil {
		return nil, fmt.Errorf("%w: vault-transit: nil LookupEnv or clock", kms.ErrConfig)
	}
	if o.maxRetries < 0 || o.maxRetries > 2 || o.minRetryWait < 0 || o.maxRetryWait < o.minRetryWait {
		return nil, fmt.Errorf("%w: vault-transit: retries must be 0..2 with 0 <= minWait <= maxWait", kms.ErrConfig)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("%w: vault-transit: negative timeout", kms.ErrConfig)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	t, err := ParseURI(cfg.URI)
	if err != nil {
		return nil, err
	}
	env, err := readEnv(o.lookup, t)
	if err != nil {
		return nil, err
	}

	b := &Backend{id: t.ID(), target: t, timeout: cfg.Timeout, auth: env.method, log: o.logger, now: o.now}
	httpClient, err := newHTTPClient(t, env.tls)
	if err != nil {
		return nil, err
	}
	if b.client, err = newAPIClient(t, httpClient, cfg.Timeout, o); err != nil {
		return nil, err
	}
	if b.loginClient, err = newAPIClient(t, httpClient, cfg.Timeout, o); err != nil {
		return nil, err
	}
	if _, static := env.method.(staticToken); static {
		b.client.SetToken(env.token)
	}
	return b, nil
}

// newHTTPClient builds the transport: TLS 1.2+, verified, with the VAULT_* CA settings.
// It goes through api.Config.ConfigureTLS, the code the Vault CLI uses, but is fed from
// our lookup instead of os.Getenv (api.DefaultConfig would also read VAULT_SKIP_VERIFY,
// VAULT_AGENT_ADDR and VAULT_MAX_RETRIES behind our back).
func newHTTPClient(t Target, tc api.TLSConfig) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.TLSHandshakeTimeout = 10 * time.Second
	// A cold start with many callers must not open (and handshake) one connection each.
	tr.MaxConnsPerHost = 32
	tr.MaxIdleConnsPerHost = 32
	hc := &http.Client{
		Transport: tr,
		// The API client follows Vault's own redirects (at most one, never to http).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if t.TLS {
		cfg := &api.Config{HttpClient: hc}
		if err := cfg.ConfigureTLS(&tc); err != nil {
			// The messages name files, never key material.
			return nil, fmt.Errorf("%w: vault-transit TLS settings: %w", kms.ErrConfig, err)
		}
	}
	return hc, nil
}

func newAPIClient(t Target, hc *http.Client, timeout time.Duration, o options) (*api.Client, error) {
	c, err := api.NewClient(&api.Config{
		Address:      t.Address(),
		HttpClient:   hc,
		Timeout:      timeout,
		MaxRetries:   o.maxRetries,
		MinRetryWait: o.minRetryWait,
		MaxRetryWait: o.maxRetryWait,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: vault-transit: %w", kms.ErrConfig, err)
	}
	// api.NewClient reads VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS from the process
	// environment; undo that so that only what New validated applies.
	c.ClearToken()
	c.SetHeaders(http.Header{})
	if t.Namespace != "" {
		c.SetNamespace(t.Namespace)
	}
	return c, nil
}

// ID implements kms.KEK.
func (b *Backend) ID() string { return b.id }

// Target returns what the URI names.
func (b *Backend) Target() Target { return b.target }

// Wrap implements kms.KEK.
func (b *Backend) Wrap(ctx context.Context, dek, aad []byte) (kms.WrappedKey, error) {
	if len(dek) == 0 {
		return kms.WrappedKey{}, fmt.Errorf("%w: vault-transit: empty DEK", kms.ErrConfig)
	}
	if err := b.proveAADBinding(ctx); err != nil {
		return kms.WrappedKey{}, err
	}
	ct, version, err := b.encrypt(ctx, dek, aad)
	if err != nil {
		return kms.WrappedKey{}, err
	}
	return kms.WrappedKey{KEKID: b.id, KEKVersion: strconv.Itoa(version), Ciphertext: []byte(ct)}, nil
}

// Unwrap implements kms.KEK.
func (b *Backend) Unwrap(ctx context.Context, w kms.WrappedKey, aad []byte) ([]byte, error) {
	if w.KEKID != b.id {
		return nil, fmt.Errorf("%w: %q is not %q", kms.ErrUnknownKey, w.KEKID, b.id)
	}
	ct := string(w.Ciphertext)
	version, err := parseCiphertext(ct)
	if err != nil {
		return nil, fmt.Errorf("%w: vault-transit %s: %w", kms.ErrDecrypt, b.id, err)
	}
	if w.KEKVersion != "" && w.KEKVersion != strconv.Itoa(version) {
		return nil, fmt.Errorf("%w: vault-transit %s: recorded key version %q does not match the ciphertext's v%d",
			kms.ErrDecrypt, b.id, w.KEKVersion, version)
	}
	return b.decrypt(ctx, ct, aad)
}

// Ping implements kms.KEK: an encrypt and decrypt round trip of a random value, which
// proves reachability, the token and both policy grants (and, once, that Vault binds
// associated_data). It needs no read grant on the key's metadata.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.proveAADBinding(ctx); err != nil {
		return err
	}
	probe := make([]byte, kms.DEKSize)
	if _, err := rand.Read(probe); err != nil {
		return err
	}
	aad := []byte("authpipe vault-transit ping")
	ct, _, err := b.encrypt(ctx, probe, aad)
	if err != nil {
		return err
	}
	if _, err := b.decrypt(ctx, ct, aad); err != nil {
		return fmt.Errorf("vault-transit ping: decrypt of a fresh ciphertext failed: %w", err)
	}
	return nil
}

// Close implements kms.KEK.
func (b *Backend) Close() error {
	if tr, ok := b.client.CloneConfig().HttpClient.Transport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
	return nil
}

// proveAADBinding checks, once per process, that Vault rejects a ciphertext under the
// wrong associated_data. A Vault that ignores the parameter (versions before it existed,
// or a non-AEAD key type) would otherwise turn the workspace binding off without a word.
func (b *Backend) proveAADBinding(ctx context.Context) error {
	b.probeMu.Lock()
	defer b.probeMu.Unlock()
	if b.aadBound {
		return nil
	}
	probe := make([]byte, kms.DEKSize)
	if _, err := rand.Read(probe); err != nil {
		return err
	}
	ct, _, err := b.encrypt(ctx, probe, []byte("authpipe aad probe: one"))
	if err != nil {
		return err
	}
	_, err = b.decrypt(ctx, ct, []byte("authpipe aad probe: two"))
	switch {
	case err == nil:
		return fmt.Errorf("%w: vault-transit %s: Vault decrypted under the wrong associated_data: the key is not an AEAD type "+
			"(use aes256-gcm96) or this Vault ignores associated_data; refusing to wrap without the binding", kms.ErrConfig, b.id)
	case errors.Is(err, kms.ErrDecrypt):
		b.aadBound = true
		return nil
	default:
		return err
	}
}

func (b *Backend) encrypt(ctx context.Context, plaintext, aad []byte) (string, int, error) {
	data := map[string]any{"plaintext": base64.StdEncoding.EncodeToString(plaintext)}
	if len(aad) > 0 {
		data["associated_data"] = base64.StdEncoding.EncodeToString(aad)
	}
	secret, err := b.write(ctx, "encrypt", data)
	if err != nil {
		return "", 0, err
	}
	ct, _ := secret.Data["ciphertext"].(string)
	version, err := parseCiphertext(ct)
	if err != nil {
		return "", 0, fmt.Errorf("%w: vault-transit %s: encrypt returned an unusable ciphertext: %w", kms.ErrUnavailable, b.id, err)
	}
	return ct, version, nil
}

func (b *Backend) decrypt(ctx context.Context, ct string, aad []byte) ([]byte, error) {
	data := map[string]any{"ciphertext": ct}
	if len(aad) > 0 {
		data["associated_data"] = base64.StdEncoding.EncodeToString(aad)
	}
	secret, err := b.write(ctx, "decrypt", data)
	if err != nil {
		return nil, err
	}
	p, _ := secret.Data["plaintext"].(string)
	pt, err := base64.StdEncoding.DecodeString(p)
	if err != nil || len(pt) == 0 {
		return nil, fmt.Errorf("%w: vault-transit %s: decrypt returned no usable plaintext", kms.ErrUnavailable, b.id)
	}
	return pt, nil
}

// write runs one Transit operation under the per-call timeout, logging in first when the
// auth method needs it and once more after a 403.
func (b *Backend) write(ctx context.Context, op string, data map[string]any) (*api.Secret, error) {
	path := b.target.Mount + "/" + op + "/" + b.target.Key
	call := func() (*api.Secret, error) {
		ctx, cancel := context.WithTimeout(ctx, b.timeout)
		defer cancel()
		return b.client.Logical().WriteWithContext(ctx, path, data)
	}
	gen, err := b.ensureToken(ctx)
	if err != nil {
		return nil, err
	}
	secret, err := call()
	if isStatus(err, http.StatusForbidden) {
		if retry, lerr := b.relogin(ctx, gen); lerr != nil {
			return nil, lerr
		} else if retry {
			secret, err = call()
		}
	}
	if err != nil {
		return nil, b.classify(op, err)
	}
	if secret == nil || secret.Data == nil {
		return nil, b.classify(op, errNoSecret)
	}
	return secret, nil
}

// parseCiphertext checks the "vault:v<N>:<base64>" shape and returns N. It lets a
// mangled ciphertext fail here, as ErrDecrypt, instead of as a request.
func parseCiphertext(ct string) (int, error) {
	rest, ok := strings.CutPrefix(ct, "vault:v")
	if !ok {
		return 0, errors.New(`ciphertext lacks the "vault:v" prefix`)
	}
	num, body, ok := strings.Cut(rest, ":")
	if !ok || num == "" || len(num) > 9 || body == "" {
		return 0, errors.New("ciphertext is not vault:v<N>:<base64>")
	}
	v, err := strconv.Atoi(num)
	if err != nil || v < 1 || num[0] == '0' {
		return 0, errors.New("ciphertext key version is not a positive number")
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return 0, errors.New("ciphertext body is not base64")
		}
	}
	return v, nil
}

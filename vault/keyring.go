package vault

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/authpipe/authpipe-proxy/internal/tracing"
	"github.com/authpipe/authpipe-proxy/kms"
)

// ErrKMSUnavailable: a DEK had to be wrapped or unwrapped and the KMS could not be reached.
// Callers answer 503 and never fall back to anything weaker. It wraps kms.ErrUnavailable,
// so errors.Is(err, kms.ErrUnavailable) holds as well.
var ErrKMSUnavailable = fmt.Errorf("vault: key service unavailable: %w", kms.ErrUnavailable)

const (
	dekIDPrefix = "dek_"
	// loadTimeout bounds a shared DEK load (store read + KMS unwrap). The load runs
	// detached from the first caller's cancellation so one impatient request cannot fail
	// every request waiting on the same key; each caller still stops waiting at its own
	// deadline.
	loadTimeout = 30 * time.Second
	// maxScratch: larger associated-data buffers are not kept for reuse.
	maxScratch = 4 << 10
)

var dekIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Keyring seals and opens the secret fields of one purpose (credentials or client
// secrets) with per-workspace DEKs: it creates a workspace's DEK on first use, unwraps
// DEKs through the purpose's KEK ring, and keeps unwrapped DEKs in a bounded cache so that
// a warm Seal or Open makes no KMS call and no database read. Safe for concurrent use.
type Keyring struct {
	purpose Purpose
	ring    *kms.Ring
	store   DEKStore
	log     *slog.Logger
	cache   *dekCache
	flight  singleflight.Group
	scratch sync.Pool // *[]byte buffers for associated data
}

type config struct {
	ttl  time.Duration
	size int
	now  func() time.Time
	log  *slog.Logger
}

// Option configures a Keyring.
type Option func(*config)

// WithCacheTTL sets how long an unwrapped DEK stays cached (default 15 minutes). After
// it, the next use unwraps again, so a KEK revoked in the KMS stops working within it.
func WithCacheTTL(d time.Duration) Option { return func(c *config) { c.ttl = d } }

// WithCacheSize bounds the number of unwrapped DEKs held (default 10,000).
func WithCacheSize(n int) Option { return func(c *config) { c.size = n } }

// WithClock injects the clock the cache expires entries by.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithLogger sets where the keyring reports refusals (never with key material or
// plaintext). The default discards.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// NewKeyring returns the keyring of one purpose. ring holds that purpose's KEKs and store
// its DEK table.
func NewKeyring(purpose Purpose, ring *kms.Ring, store DEKStore, opts ...Option) (*Keyring, error) {
	cfg := config{ttl: DefaultCacheTTL, size: DefaultCacheSize, now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	var errs []error
	if purpose != PurposeCredentials && purpose != PurposeClientSecrets {
		errs = append(errs, fmt.Errorf("unknown purpose %q", purpose))
	}
	if ring == nil {
		errs = append(errs, errors.New("no KEK ring"))
	}
	if store == nil {
		errs = append(errs, errors.New("no DEK store"))
	}
	if cfg.ttl <= 0 {
		errs = append(errs, fmt.Errorf("cache TTL must be positive, got %s", cfg.ttl))
	}
	if cfg.size <= 0 {
		errs = append(errs, fmt.Errorf("cache size must be positive, got %d", cfg.size))
	}
	if cfg.now == nil {
		errs = append(errs, errors.New("nil clock"))
	}
	if cfg.log == nil {
		errs = append(errs, errors.New("nil logger"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("vault: keyring: %w", err)
	}
	return &Keyring{
		purpose: purpose,
		ring:    ring,
		store:   store,
		log:     cfg.log.With("component", "vault.keyring", "purpose", string(purpose)),
		cache:   newDEKCache(cfg.now, cfg.ttl, cfg.size),
		scratch: sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }},
	}, nil
}

// Purpose is the purpose this keyring serves.
func (k *Keyring) Purpose() Purpose { return k.purpose }

// Ping reports whether the current KEK can be used (readiness).
func (k *Keyring) Ping(ctx context.Context) error { return kmsError(k.ring.Ping(ctx)) }

// Forget drops and zeroes every cached DEK of the workspace. Call it after deleting the
// workspace's DEKs (crypto-shredding) so this replica stops opening its ciphertext at once.
func (k *Keyring) Forget(workspaceID string) { k.cache.forget(workspaceID) }

// GenerateDEK makes a new DEK for the workspace: 32 bytes from crypto/rand, wrapped by the
// current KEK with associated data (workspace id, purpose, DEK id). It is NOT persisted:
// the caller inserts it with DEKStore.InsertDEK in its own transaction (for instance the
// one creating the workspace). The unwrapped key is cached, so its first use makes no KMS
// call.
func (k *Keyring) GenerateDEK(ctx context.Context, workspaceID string) (DEKRecord, error) {
	gen := k.cache.generation()
	e, err := k.generate(ctx, workspaceID)
	if err != nil {
		return DEKRecord{}, err
	}
	k.cache.put(e, gen)
	return e.rec, nil
}

func (k *Keyring) generate(ctx context.Context, workspaceID string) (*cacheEntry, error) {
	if workspaceID == "" {
		return nil, ErrInvalidBinding
	}
	var idBytes [16]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return nil, err
	}
	id := dekIDPrefix + dekIDEncoding.EncodeToString(idBytes[:])
	key := make([]byte, kms.DEKSize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	w, err := k.ring.Wrap(ctx, key, WrapAAD(workspaceID, k.purpose, id))
	if err != nil {
		clear(key)
		return nil, fmt.Errorf("vault: wrap new DEK: %w", kmsError(err))
	}
	rec := DEKRecord{
		ID:          id,
		WorkspaceID: workspaceID,
		Purpose:     k.purpose,
		KEKID:       w.KEKID,
		KEKVersion:  w.KEKVersion,
		Wrapped:     w.Ciphertext,
		CreatedAt:   k.cache.now().UTC(),
	}
	return newDEKEntry(k.cache, rec, key)
}

// Seal seals plaintext for the binding under the workspace's active DEK, creating the
// workspace's first DEK if it has none.
func (k *Keyring) Seal(ctx context.Context, b Binding, plaintext Secret) ([]byte, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	e := k.cache.getActive(b.WorkspaceID, k.purpose)
	if e == nil {
		var err error
		if e, err = k.loadActive(ctx, b.WorkspaceID); err != nil {
			return nil, err
		}
	}
	buf := k.scratch.Get().(*[]byte)
	out, aad, err := sealScratch(e.aead, e.rec.ID, k.purpose, b, plaintext.Bytes(), *buf)
	k.putScratch(buf, aad)
	return out, err
}

// Open opens a value that Seal produced for exactly this binding. Every failure other
// than an unreachable KMS (ErrKMSUnavailable) or store wraps ErrDecrypt.
func (k *Keyring) Open(ctx context.Context, b Binding, envelope []byte) (Secret, error) {
	if err := b.validate(); err != nil {
		return Secret{}, err
	}
	v, err := parseView(envelope)
	if err != nil {
		return Secret{}, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	e := k.cache.get(v.id)
	if e == nil {
		if e, err = k.loadDEK(ctx, string(v.id), nil, k.cache.generation()); err != nil {
			return Secret{}, err
		}
	}
	if e.rec.WorkspaceID != b.WorkspaceID || e.rec.Purpose != k.purpose {
		k.log.WarnContext(ctx, "envelope names a DEK of another workspace or purpose; refused",
			"dek_id", e.rec.ID, "dek_workspace_id", e.rec.WorkspaceID, "dek_purpose", string(e.rec.Purpose),
			"workspace_id", b.WorkspaceID, "owner_id", b.OwnerID, "field", b.Field)
		return Secret{}, ErrDecrypt
	}
	buf := k.scratch.Get().(*[]byte)
	pt, aad, err := openScratch(e.aead, v, k.purpose, b, *buf)
	k.putScratch(buf, aad)
	if err != nil {
		k.log.WarnContext(ctx, "sealed value failed to authenticate",
			"dek_id", e.rec.ID, "workspace_id", b.WorkspaceID, "owner_id", b.OwnerID, "field", b.Field)
		return Secret{}, err
	}
	return SecretFromBytes(pt), nil
}

func (k *Keyring) putScratch(buf *[]byte, aad []byte) {
	if cap(aad) > maxScratch {
		return
	}
	*buf = aad[:0]
	k.scratch.Put(buf)
}

// loadActive finds (or creates) the workspace's active DEK, once per workspace at a time.
func (k *Keyring) loadActive(ctx context.Context, workspaceID string) (*cacheEntry, error) {
	return k.shared(ctx, "active\x00"+workspaceID, func(ctx context.Context) (*cacheEntry, error) {
		if e := k.cache.getActive(workspaceID, k.purpose); e != nil {
			return e, nil
		}
		gen := k.cache.generation()
		rec, err := k.store.ActiveDEK(ctx, workspaceID, k.purpose)
		if errors.Is(err, ErrNotFound) {
			return k.createActive(ctx, workspaceID, gen)
		}
		if err != nil {
			return nil, fmt.Errorf("vault: read active DEK: %w", err)
		}
		if rec.WorkspaceID != workspaceID || rec.Purpose != k.purpose {
			k.log.ErrorContext(ctx, "store returned a DEK of another workspace or purpose as active; refused",
				"dek_id", rec.ID, "workspace_id", workspaceID)
			return nil, fmt.Errorf("vault: store returned a foreign DEK as active: %w", ErrDecrypt)
		}
		e, err := k.loadDEK(ctx, rec.ID, &rec, gen)
		if err != nil {
			return nil, err
		}
		k.cache.setActive(e, gen)
		return e, nil
	})
}

// createActive generates and inserts the workspace's first DEK; when another request or
// replica inserted one first, it uses the winner's.
func (k *Keyring) createActive(ctx context.Context, workspaceID string, gen uint64) (*cacheEntry, error) {
	e, err := k.generate(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	err = k.store.InsertDEK(ctx, e.rec)
	if err == nil {
		e = k.cache.put(e, gen)
		k.cache.setActive(e, gen)
		return e, nil
	}
	e.zero()
	if !errors.Is(err, ErrDEKExists) {
		return nil, fmt.Errorf("vault: insert DEK: %w", err)
	}
	rec, err := k.store.ActiveDEK(ctx, workspaceID, k.purpose)
	if err != nil {
		return nil, fmt.Errorf("vault: read active DEK after losing the insert race: %w", err)
	}
	if rec.WorkspaceID != workspaceID || rec.Purpose != k.purpose {
		return nil, fmt.Errorf("vault: store returned a foreign DEK as active: %w", ErrDecrypt)
	}
	if e, err = k.loadDEK(ctx, rec.ID, &rec, gen); err != nil {
		return nil, err
	}
	k.cache.setActive(e, gen)
	return e, nil
}

// loadDEK unwraps the DEK with this id (reading it from the store unless rec is given),
// once per id at a time, and caches it.
func (k *Keyring) loadDEK(ctx context.Context, id string, rec *DEKRecord, gen uint64) (*cacheEntry, error) {
	return k.shared(ctx, "dek\x00"+id, func(ctx context.Context) (_ *cacheEntry, err error) {
		if e := k.cache.getID(id); e != nil {
			return e, nil
		}
		ctx, span := tracing.Start(ctx, "vault.dek_unwrap", trace.SpanKindInternal) // a cache miss
		tracing.Set(span, attribute.String("authpipe.dek.purpose", string(k.purpose)))
		defer func() { tracing.End(span, err) }()
		var r DEKRecord
		if rec != nil {
			r = *rec
		} else {
			var err error
			r, err = k.store.DEK(ctx, id)
			if errors.Is(err, ErrNotFound) {
				// Unknown or shredded: to the caller it is a value that does not open.
				return nil, fmt.Errorf("%w: %w", ErrDecrypt, ErrNotFound)
			}
			if err != nil {
				return nil, fmt.Errorf("vault: read DEK: %w", err)
			}
		}
		if r.ID != id || r.Purpose != k.purpose {
			k.log.WarnContext(ctx, "DEK of another purpose or id refused", "dek_id", id, "dek_purpose", string(r.Purpose))
			return nil, ErrDecrypt
		}
		key, err := k.ring.Unwrap(ctx, kms.WrappedKey{KEKID: r.KEKID, KEKVersion: r.KEKVersion, Ciphertext: r.Wrapped},
			WrapAAD(r.WorkspaceID, r.Purpose, r.ID))
		if err != nil {
			if errors.Is(err, kms.ErrUnavailable) {
				return nil, kmsError(err)
			}
			k.log.ErrorContext(ctx, "DEK cannot be unwrapped", "dek_id", id, "kek_id", r.KEKID, "error", err)
			return nil, fmt.Errorf("%w: DEK cannot be unwrapped: %w", ErrDecrypt, err)
		}
		e, err := newDEKEntry(k.cache, r, key)
		if err != nil {
			return nil, err
		}
		return k.cache.put(e, gen), nil
	})
}

// shared runs load once for all concurrent callers with the same key, detached from the
// first caller's cancellation (bounded by loadTimeout); each caller waits until its own
// context ends.
func (k *Keyring) shared(ctx context.Context, key string, load func(context.Context) (*cacheEntry, error)) (*cacheEntry, error) {
	ch := k.flight.DoChan(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		return load(lctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*cacheEntry), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("vault: waiting for a data key: %w", ctx.Err())
	}
}

func newDEKEntry(c *dekCache, rec DEKRecord, key []byte) (*cacheEntry, error) {
	if len(key) != kms.DEKSize {
		clear(key)
		return nil, fmt.Errorf("%w: unwrapped DEK has the wrong size", ErrDecrypt)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		clear(key)
		return nil, fmt.Errorf("vault: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		clear(key)
		return nil, fmt.Errorf("vault: %w", err)
	}
	return c.newEntry(rec, key, aead), nil
}

// WrapAAD is the associated data a DEK is wrapped under: its workspace, purpose and id,
// each with a uint32 big-endian length prefix (docs/formats.md, "Wrapped DEK").
func WrapAAD(workspaceID string, purpose Purpose, id string) []byte {
	return appendLP(make([]byte, 0, 12+len(workspaceID)+len(purpose)+len(id)), workspaceID, string(purpose), id)
}

// kmsError maps a KMS outage to ErrKMSUnavailable (keeping the backend's error in the
// chain) and passes anything else through.
func kmsError(err error) error {
	if err != nil && errors.Is(err, kms.ErrUnavailable) && !errors.Is(err, ErrKMSUnavailable) {
		return fmt.Errorf("%w: %w", ErrKMSUnavailable, err)
	}
	return err
}

package admin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Purposes of the proxy's own keys, as the CLI and the admin endpoint name them.
const (
	PurposeAPIKeyHash = "apikey-hash"
	PurposeState      = "state"
	PurposeWebhook    = "webhook"
	PurposeCheckpoint = "checkpoint"
)

// keySetSpec says how a purpose's keys are stored and when a rotated key retires.
type keySetSpec struct {
	purpose   string        // the API name (PurposeState, …)
	dbPurpose string        // proxy_keys.purpose (the first two predate rotation)
	firstID   string        // the id of the purpose's first key: replicas starting together agree on it
	retireIn  time.Duration // > 0: a rotated key retires this long after the rotation
	retire    retirePolicy
}

type retirePolicy int

const (
	retireAfterWindow retirePolicy = iota // retire_after = rotation + retireIn
	retireWhenUnused                      // when no unrevoked API key names it (apikey-hash)
	retireNever                           // checkpoint keys stay published forever
)

var keySetSpecs = map[string]keySetSpec{
	PurposeAPIKeyHash: {purpose: PurposeAPIKeyHash, dbPurpose: hashKeyPurpose, firstID: hashKeyID, retire: retireWhenUnused},
	PurposeState: {purpose: PurposeState, dbPurpose: "connect_state", firstID: "pk_connect_state_1",
		retireIn: StateKeyRetireIn, retire: retireAfterWindow},
	PurposeCheckpoint: {purpose: PurposeCheckpoint, dbPurpose: checkpointKeyPurpose, firstID: checkpointKeyID, retire: retireNever},
	purposeAnomaly:    {purpose: purposeAnomaly, dbPurpose: "anomaly_client_hash", firstID: "pk_anomaly_client_hash_1", retire: retireNever},
}

// StateKeyRetireIn is how long a rotated state key keeps verifying: the connect flow's
// lifetime (oauthflow.SessionLifetime, 10 minutes) and a margin for clock skew.
const StateKeyRetireIn = 15 * time.Minute

// KeySetRefresh is how often a replica re-reads a key set, so a rotation made by another
// replica (or the CLI) reaches it; an unknown kid also triggers a re-read, at most once
// per keySetMissInterval.
const (
	KeySetRefresh      = 30 * time.Second
	keySetMissInterval = time.Second
)

// Key is one loaded key of a set.
type Key struct {
	kid      string
	state    string
	created  time.Time
	material []byte
	macs     *sync.Pool // of hash.Hash: HMAC-SHA256 keyed with material
}

// KID is the key's id (proxy_keys.id).
func (k *Key) KID() string { return k.kid }

// Material is the key's 32 bytes; the caller must not change them.
func (k *Key) Material() []byte { return k.material }

// MAC returns HMAC-SHA256(material, parts...) from a pooled keyed state.
func (k *Key) MAC(parts ...[]byte) []byte {
	m := k.macs.Get().(hash.Hash)
	m.Reset()
	for _, p := range parts {
		m.Write(p)
	}
	sum := m.Sum(make([]byte, 0, sha256.Size))
	m.Reset() // what goes back to the pool holds nothing of the input
	k.macs.Put(m)
	return sum
}

type keySnapshot struct {
	active *Key
	all    []*Key // unretired, active first
	byKid  map[string]*Key
	loaded time.Time
}

// KeySet is the set of one purpose's keys: one active key (signs and verifies), any
// number of verify-only keys (verify until nothing they made can still be presented),
// retired keys (neither; never loaded). Key material is 32 bytes from crypto/rand, sealed
// under the client-secret keyring bound to vault.ProxyKeyBinding(kid). Verification picks
// a key by kid only and tries nothing else.
type KeySet struct {
	spec    keySetSpec
	store   KeySetStore
	secrets *vault.Keyring
	now     func() time.Time
	born    time.Time // when this replica built the set (Born)

	mu       sync.Mutex // the slow path: (re)loading
	snap     atomic.Pointer[keySnapshot]
	lastMiss time.Time // under mu
}

func newKeySet(purpose string, s KeySetStore, secrets *vault.Keyring, now func() time.Time) *KeySet {
	spec, ok := keySetSpecs[purpose]
	if !ok {
		panic("admin: no key set spec for " + purpose) // programming error: callers pass the constants
	}
	if now == nil {
		now = time.Now
	}
	return &KeySet{spec: spec, store: s, secrets: secrets, now: now, born: now()}
}

// Born is when this replica built the set: the connect flows accept the states of the
// version before for a while after it (proxy/connect_state.go).
func (ks *KeySet) Born() time.Time { return ks.born }

// ErrUnknownPurpose is returned for a purpose that has no rotatable key set.
var ErrUnknownPurpose = errors.New("admin: unknown key purpose")

func (ks *KeySet) current(ctx context.Context) (*keySnapshot, error) {
	if sn := ks.snap.Load(); sn != nil && ks.now().Sub(sn.loaded) < KeySetRefresh {
		return sn, nil
	}
	return ks.reload(ctx, false)
}

// reload re-reads the set; force re-reads even if another caller just did (after a
// rotation on this replica), otherwise a fresh snapshot is reused.
func (ks *KeySet) reload(ctx context.Context, force bool) (*keySnapshot, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	prev := ks.snap.Load()
	if !force && prev != nil && ks.now().Sub(prev.loaded) < KeySetRefresh {
		return prev, nil
	}
	if err := ks.retireDue(ctx); err != nil && prev != nil {
		return ks.keep(prev), nil // the database is unreachable: keep verifying with what we have
	}
	rows, err := ks.store.ProxyKeys(ctx, ks.spec.dbPurpose)
	if err == nil && len(rows) == 0 {
		var first store.ProxyKey
		if first, err = ks.create(ctx, ks.spec.firstID); err == nil {
			_, err = ks.store.InsertProxyKeyIfAbsent(ctx, first)
		}
		if err == nil {
			rows, err = ks.store.ProxyKeys(ctx, ks.spec.dbPurpose)
		}
	}
	if err != nil {
		if prev != nil {
			return ks.keep(prev), nil
		}
		return nil, fmt.Errorf("admin: load the %s keys: %w", ks.spec.purpose, err)
	}
	sn := &keySnapshot{byKid: make(map[string]*Key, len(rows)), loaded: ks.now()}
	for _, r := range rows { // newest first: the first active row is the signing key
		k := (*Key)(nil)
		if prev != nil {
			k = prev.byKid[r.ID]
		}
		if k == nil {
			var oerr error
			if k, oerr = ks.Open(ctx, r); oerr != nil {
				if prev != nil {
					return ks.keep(prev), nil
				}
				return nil, fmt.Errorf("admin: open the %s key %s: %w", ks.spec.purpose, r.ID, oerr)
			}
		}
		k = &Key{kid: k.kid, state: r.State, created: r.CreatedAt, material: k.material, macs: k.macs}
		if r.State == store.ProxyKeyActive && sn.active == nil {
			sn.active = k
			sn.all = append([]*Key{k}, sn.all...)
		} else {
			sn.all = append(sn.all, k)
		}
		sn.byKid[r.ID] = k
	}
	if sn.active == nil {
		if prev != nil {
			return prev, nil
		}
		return nil, fmt.Errorf("admin: the %s key set has no active key", ks.spec.purpose)
	}
	ks.snap.Store(sn)
	return sn, nil
}

// keep re-stamps the previous snapshot after a failed re-read, so the next attempt waits
// a refresh interval instead of every request retrying (and queueing on mu).
func (ks *KeySet) keep(prev *keySnapshot) *keySnapshot {
	sn := *prev
	sn.loaded = ks.now()
	ks.snap.Store(&sn)
	return &sn
}

func (ks *KeySet) retireDue(ctx context.Context) error {
	var err error
	switch ks.spec.retire {
	case retireAfterWindow:
		_, err = ks.store.RetireExpiredProxyKeys(ctx, ks.spec.dbPurpose, ks.now())
	case retireWhenUnused:
		_, err = ks.store.RetireUnusedHashKeys(ctx, ks.spec.dbPurpose)
	}
	return err
}

// create makes a fresh sealed key row (not stored).
func (ks *KeySet) create(ctx context.Context, kid string) (store.ProxyKey, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return store.ProxyKey{}, err
	}
	sealed, err := ks.secrets.Seal(ctx, vault.ProxyKeyBinding(kid), vault.SecretFromBytes(raw))
	clear(raw)
	if err != nil {
		return store.ProxyKey{}, fmt.Errorf("admin: seal a new %s key: %w", ks.spec.purpose, err)
	}
	return store.ProxyKey{ID: kid, Purpose: ks.spec.dbPurpose, State: store.ProxyKeyActive, Sealed: sealed,
		CreatedAt: ks.now().UTC()}, nil
}

// Active returns the signing key.
func (ks *KeySet) Active(ctx context.Context) (*Key, error) {
	sn, err := ks.current(ctx)
	if err != nil {
		return nil, err
	}
	return sn.active, nil
}

// ByKid returns the unretired key kid, or nil. An unknown kid re-reads the set (rate
// limited), so a key another replica just made is found.
func (ks *KeySet) ByKid(ctx context.Context, kid string) (*Key, error) {
	sn, err := ks.current(ctx)
	if err != nil {
		return nil, err
	}
	if k := sn.byKid[kid]; k != nil {
		return k, nil
	}
	ks.mu.Lock()
	stale := ks.now().Sub(ks.lastMiss) >= keySetMissInterval
	if stale {
		ks.lastMiss = ks.now()
	}
	ks.mu.Unlock()
	if !stale {
		return nil, nil
	}
	if sn, err = ks.reload(ctx, true); err != nil {
		return nil, err
	}
	return sn.byKid[kid], nil
}

// Open unseals a stored key of the set.
func (ks *KeySet) Open(ctx context.Context, r store.ProxyKey) (*Key, error) {
	sec, err := ks.secrets.Open(ctx, vault.ProxyKeyBinding(r.ID), r.Sealed)
	if err != nil {
		return nil, err
	}
	material := sec.Bytes()
	return &Key{kid: r.ID, material: material,
		macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, material) }}}, nil
}

// Published returns the newest key that has been in the set for at least delay: with
// delay ≥ the time a replica may go without re-reading the set, every replica knows the
// key before anything made with it can be presented, so verifiers may look kids up in
// what they have loaded (Loaded) and need never read the database for an unknown one.
// When no key is that old (the first minute of a deployment, or of a second rotation
// within delay), the oldest unretired key: the one the most replicas can have loaded.
// The key returned keeps verifying for the flow lifetime: a key is moved to verify-only
// when a newer one is made, and retires retireIn after that.
func (ks *KeySet) Published(ctx context.Context, delay time.Duration) (*Key, error) {
	sn, err := ks.current(ctx)
	if err != nil {
		return nil, err
	}
	cutoff := ks.now().Add(-delay)
	for _, k := range sn.all { // the active key, then the verify-only ones newest first
		if !k.created.After(cutoff) {
			return k, nil
		}
	}
	return sn.all[len(sn.all)-1], nil
}

// Loaded returns the unretired key kid from the set as loaded, or nil. Unlike ByKid it
// never re-reads the set because of the kid, so a caller cannot make it touch the
// database by naming a key that does not exist; the set is still re-read when it is
// older than KeySetRefresh, whoever asks (at most once per interval per replica).
func (ks *KeySet) Loaded(ctx context.Context, kid string) (*Key, error) {
	sn, err := ks.current(ctx)
	if err != nil {
		return nil, err
	}
	return sn.byKid[kid], nil
}

// Verifiers returns every unretired key, the active one first.
func (ks *KeySet) Verifiers(ctx context.Context) ([]*Key, error) {
	sn, err := ks.current(ctx)
	if err != nil {
		return nil, err
	}
	return sn.all, nil
}

// every returns every key the set has had, retired ones included, the active one first:
// what recognises a hash made under any of them. It opens the retired keys (one KMS call
// each) and keeps none of them.
func (ks *KeySet) every(ctx context.Context) ([]*Key, error) {
	sn, err := ks.current(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := ks.store.AllProxyKeys(ctx, ks.spec.dbPurpose)
	if err != nil {
		return nil, err
	}
	out := append([]*Key(nil), sn.all...)
	for _, r := range rows {
		if sn.byKid[r.ID] != nil {
			continue
		}
		k, err := ks.Open(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("admin: open the %s key %s: %w", ks.spec.purpose, r.ID, err)
		}
		out = append(out, k)
	}
	return out, nil
}

// ProxyKeyRotation is the outcome of a rotation.
type ProxyKeyRotation struct {
	Purpose string   `json:"purpose"`
	KID     string   `json:"kid"`
	Rotated []string `json:"verify_only"` // the kids moved to verify-only
	// CheckpointKID is, for the checkpoint purpose, the new key's audit.KeyIDOf (ckp_…),
	// the kid checkpoints carry.
	CheckpointKID string `json:"checkpoint_kid,omitempty"`
}

// rotate makes a new active key and moves the active one to verify-only, in one
// transaction with the key.rotated audit event (purpose and kids; never the key).
func (ks *KeySet) rotate(ctx context.Context, actor string) (ProxyKeyRotation, error) {
	if _, err := ks.current(ctx); err != nil { // the first key exists before it is rotated away
		return ProxyKeyRotation{}, err
	}
	kid := ids.New(ids.ProxyKey)
	row, err := ks.create(ctx, kid)
	if err != nil {
		return ProxyKeyRotation{}, err
	}
	var retireAfter *time.Time
	if ks.spec.retire == retireAfterWindow {
		t := ks.now().UTC().Add(ks.spec.retireIn)
		retireAfter = &t
	}
	ev := keyRotatedEvent(ks.spec.purpose, kid, actor)
	moved, err := ks.store.RotateProxyKey(ctx, row, retireAfter, ev)
	if err != nil {
		return ProxyKeyRotation{}, fmt.Errorf("admin: rotate the %s key: %w", ks.spec.purpose, err)
	}
	if _, err := ks.reload(ctx, true); err != nil {
		return ProxyKeyRotation{}, err
	}
	return ProxyKeyRotation{Purpose: ks.spec.purpose, KID: kid, Rotated: moved}, nil
}

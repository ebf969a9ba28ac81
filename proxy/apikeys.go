package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Scopes of API keys (API.md). ScopeAdmin implies every scope of its workspace but
// ScopeWorkspacesWrite, which only the bootstrap key holds.
const (
	ScopeTokensRead       = "tokens:read"
	ScopeConnectionsWrite = "connections:write"
	ScopeProvidersWrite   = "providers:write"
	ScopeAuditRead        = "audit:read"
	ScopeAdmin            = "admin"
	ScopeWorkspacesWrite  = "workspaces:write"
)

// AllScopes lists the valid scopes.
var AllScopes = []string{ScopeTokensRead, ScopeConnectionsWrite, ScopeProvidersWrite, ScopeAuditRead, ScopeAdmin, ScopeWorkspacesWrite}

// KeyPrefix starts every API key.
const KeyPrefix = "ap_"

// systemWorkspace owns the DEK that seals the proxy's own keys (client-secret keyring).
const systemWorkspace = "_system"

const (
	hashKeyPurpose = "apikey_hash"
	hashKeyID      = "pk_apikey_hash_1"
)

// NewAPIKey returns a fresh key: "ap_" + 256 bits from crypto/rand, base64url.
func NewAPIKey() vault.Secret {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return vault.NewSecret(KeyPrefix + base64.RawURLEncoding.EncodeToString(b))
}

// ValidKeyFormat reports whether s looks like an API key (cheap check before hashing).
func ValidKeyFormat(s string) bool {
	rest, ok := strings.CutPrefix(s, KeyPrefix)
	if !ok || len(rest) < 32 || len(rest) > 128 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// KeyDisplayPrefix is what listings show: the first 8 characters after "ap_".
func KeyDisplayPrefix(key vault.Secret) string {
	s := key.Reveal()
	return s[len(KeyPrefix) : len(KeyPrefix)+8]
}

// KeyHasher computes the keyed hash (HMAC-SHA256) under which API keys are stored. Its
// key is one of the proxy's own keys, generated on first use and stored sealed under the
// client-secret keyring, so a database dump alone cannot test guesses against the hashes.
type KeyHasher struct {
	store   *store.Store
	secrets *vault.Keyring

	mu  sync.Mutex
	key []byte
}

// NewKeyHasher returns a hasher; its key is loaded on first use (and retried on failure,
// so a KMS that is down at start-up only delays it).
func NewKeyHasher(s *store.Store, secrets *vault.Keyring) *KeyHasher {
	return &KeyHasher{store: s, secrets: secrets}
}

// Hash returns HMAC(key, apiKey) and the id of the hashing key.
func (h *KeyHasher) Hash(ctx context.Context, apiKey vault.Secret) ([]byte, string, error) {
	k, err := h.loadKey(ctx)
	if err != nil {
		return nil, "", err
	}
	m := hmac.New(sha256.New, k)
	m.Write(apiKey.Bytes())
	return m.Sum(nil), hashKeyID, nil
}

func (h *KeyHasher) loadKey(ctx context.Context) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.key != nil {
		return h.key, nil
	}
	bind := vault.Binding{WorkspaceID: systemWorkspace, OwnerID: hashKeyID, Field: "key"}
	pk, err := h.store.ProxyKeyByID(ctx, hashKeyID)
	if errors.Is(err, store.ErrNotFound) {
		raw := make([]byte, 32)
		_, _ = rand.Read(raw)
		sealed, serr := h.secrets.Seal(ctx, bind, vault.SecretFromBytes(raw))
		if serr != nil {
			return nil, serr
		}
		pk, err = h.store.InsertProxyKeyIfAbsent(ctx, store.ProxyKey{ID: hashKeyID, Purpose: hashKeyPurpose,
			State: "active", Sealed: sealed, CreatedAt: time.Now().UTC()})
	}
	if err != nil {
		return nil, err
	}
	sec, err := h.secrets.Open(ctx, bind, pk.Sealed)
	if err != nil {
		return nil, fmt.Errorf("open the API-key hashing key: %w", err)
	}
	h.key = sec.Bytes()
	return h.key, nil
}

// Principal is the authenticated caller of a request.
type Principal struct {
	KeyID       string
	WorkspaceID string
	Scopes      []string
}

// Has reports whether the principal holds scope (admin implies all but workspaces:write).
func (p Principal) Has(scope string) bool {
	if slices.Contains(p.Scopes, scope) {
		return true
	}
	return scope != ScopeWorkspacesWrite && slices.Contains(p.Scopes, ScopeAdmin)
}

// authCache remembers lookups by hash for a short TTL, including misses and revoked keys,
// so that valid, unknown and revoked keys cost the same and a revoke reaches this replica
// within the TTL.
type authCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.RWMutex
	entries map[[32]byte]authEntry
}

type authEntry struct {
	principal Principal
	ok        bool
	expires   time.Time
}

func newAuthCache(ttl time.Duration, max int, now func() time.Time) *authCache {
	return &authCache{ttl: ttl, max: max, now: now, entries: make(map[[32]byte]authEntry)}
}

func (a *authCache) get(h [32]byte) (authEntry, bool) {
	a.mu.RLock()
	e, ok := a.entries[h]
	a.mu.RUnlock()
	if !ok || a.now().After(e.expires) {
		return authEntry{}, false
	}
	return e, true
}

func (a *authCache) put(h [32]byte, e authEntry) {
	e.expires = a.now().Add(a.ttl)
	a.mu.Lock()
	if len(a.entries) >= a.max {
		now := a.now()
		for k, v := range a.entries {
			if now.After(v.expires) {
				delete(a.entries, k)
			}
		}
		if len(a.entries) >= a.max { // all fresh: drop an arbitrary half
			n := 0
			for k := range a.entries {
				delete(a.entries, k)
				if n++; n >= a.max/2 {
					break
				}
			}
		}
	}
	a.entries[h] = e
	a.mu.Unlock()
}

// forget drops every entry (after a revoke on this replica).
func (a *authCache) forget() {
	a.mu.Lock()
	clear(a.entries)
	a.mu.Unlock()
}

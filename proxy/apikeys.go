package proxy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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
// keys are the apikey-hash key set (keyset.go): generated on first use, stored sealed
// under the client-secret keyring, so a database dump alone cannot test guesses against
// the hashes. A hash cannot be recomputed under another key, so after a rotation new API
// keys are hashed with the new key and old ones keep verifying under theirs (each row
// names its hash_key_id) until the last of them is revoked.
type KeyHasher struct {
	keys *KeySet
}

// NewKeyHasher returns a hasher; its keys are loaded on first use (and retried on failure,
// so a KMS that is down at start-up only delays it).
func NewKeyHasher(s *store.Store, secrets *vault.Keyring) *KeyHasher {
	return &KeyHasher{keys: newKeySet(PurposeAPIKeyHash, s, secrets, nil)}
}

// Hash returns HMAC(active key, apiKey) and the id of that hashing key. Once the keys are
// loaded it takes no lock: keyed HMAC states come from a pool.
func (h *KeyHasher) Hash(ctx context.Context, apiKey vault.Secret) ([]byte, string, error) {
	k, err := h.keys.active(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("the API-key hashing key: %w", err)
	}
	return k.mac(apiKey.Bytes()), k.kid, nil
}

// keyHash is apiKey's hash under one hashing key.
type keyHash struct {
	kid  string
	hash []byte
}

// hashes returns apiKey's hash under every hashing key that still verifies, the active
// key's first (usually just that one; two or three during a rotation).
func (h *KeyHasher) hashes(ctx context.Context, apiKey vault.Secret) ([]keyHash, error) {
	ks, err := h.keys.verifiers(ctx)
	if err != nil {
		return nil, fmt.Errorf("the API-key hashing key: %w", err)
	}
	out := make([]keyHash, len(ks))
	for i, k := range ks {
		out[i] = keyHash{kid: k.kid, hash: k.mac(apiKey.Bytes())}
	}
	return out, nil
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

package admin

import (
	"context"
	"crypto/hmac"
	"slices"
	"sync"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

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

// forget drops every entry (after a revoke or a hashing-key rotation on this replica).
func (a *authCache) forget() {
	a.mu.Lock()
	clear(a.entries)
	a.mu.Unlock()
}

// Authenticate resolves a presented API key (ValidKeyFormat already checked) to its
// principal. Unknown, revoked and mis-hashed keys all return problem.ErrUnauthorized
// through the same steps; lookups, misses included, are cached for the TTL, keyed by the
// hash under the active hashing key. The token endpoint calls it on every request: once
// the cache is warm it allocates only the hashes.
func (s *Service) Authenticate(ctx context.Context, key vault.Secret) (Principal, error) {
	hs, err := s.hasher.hashes(ctx, key) // one per hashing key that still verifies
	if err != nil {
		return Principal{}, err
	}
	var hk [32]byte
	copy(hk[:], hs[0].hash) // cached under the active key's hash
	if e, ok := s.auth.get(hk); ok {
		if !e.ok {
			return Principal{}, problem.ErrUnauthorized
		}
		return e.principal, nil
	}
	rows, err := s.store.APIKeysByHashes(ctx, hashValues(hs))
	if err != nil {
		return Principal{}, err
	}
	k, ok := validKey(hs, rows)
	if !ok {
		s.auth.put(hk, authEntry{})
		return Principal{}, problem.ErrUnauthorized
	}
	p := Principal{KeyID: k.ID, WorkspaceID: k.WorkspaceID, Scopes: k.Scopes}
	s.auth.put(hk, authEntry{principal: p, ok: true})
	return p, nil
}

// validKey picks the row a presented key authenticates as from the rows its hashes
// matched: none if any of them is revoked (a key stored under several hashing keys, such
// as a bootstrap key, stays revoked whichever row was revoked), else the oldest row whose
// hash verifies under the key its hash_key_id names.
func validKey(hs []keyHash, rows []store.APIKey) (store.APIKey, bool) {
	for _, k := range rows {
		if k.RevokedAt != nil {
			return store.APIKey{}, false
		}
	}
	for _, k := range rows {
		if hashedWith(hs, k) {
			return k, true
		}
	}
	return store.APIKey{}, false
}

// hashedWith reports whether k's stored hash is the hash under the key its hash_key_id
// names: the key is picked by id, and no other key's hash is accepted for it.
func hashedWith(hs []keyHash, k store.APIKey) bool {
	for _, h := range hs {
		if h.kid == k.HashKeyID {
			return hmac.Equal(h.hash, k.Hash)
		}
	}
	return false
}

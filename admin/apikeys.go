package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
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

// FirstAPIKeyHashKeyID is the id of the first API-key hashing key (the connect flows'
// legacy browser binding derives from it).
const FirstAPIKeyHashKeyID = hashKeyID

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

// Hash returns HMAC(active key, apiKey) and the id of that hashing key. Once the keys are
// loaded it takes no lock: keyed HMAC states come from a pool.
func (h *KeyHasher) Hash(ctx context.Context, apiKey vault.Secret) ([]byte, string, error) {
	k, err := h.keys.Active(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("the API-key hashing key: %w", err)
	}
	return k.MAC(apiKey.Bytes()), k.kid, nil
}

// keyHash is apiKey's hash under one hashing key.
type keyHash struct {
	kid  string
	hash []byte
}

// hashes returns apiKey's hash under every hashing key that still verifies, the active
// key's first (usually just that one; two or three during a rotation).
func (h *KeyHasher) hashes(ctx context.Context, apiKey vault.Secret) ([]keyHash, error) {
	ks, err := h.keys.Verifiers(ctx)
	if err != nil {
		return nil, fmt.Errorf("the API-key hashing key: %w", err)
	}
	return hashesUnder(ks, apiKey), nil
}

func hashesUnder(ks []*Key, apiKey vault.Secret) []keyHash {
	out := make([]keyHash, len(ks))
	for i, k := range ks {
		out[i] = keyHash{kid: k.kid, hash: k.MAC(apiKey.Bytes())}
	}
	return out
}

func hashValues(hs []keyHash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i].hash
	}
	return out
}

// CreatedKey is a key just made: the one time it is shown (its JSON carries the key).
type CreatedKey struct {
	ID     string       `json:"id"`
	Key    vault.Secret `json:"-"`
	Prefix string       `json:"prefix"`
	Scopes []string     `json:"scopes"`
	Name   string       `json:"name,omitempty"`
}

// MarshalJSON shows the key: this is the one response that must (API.md).
func (k CreatedKey) MarshalJSON() ([]byte, error) {
	type shown struct {
		ID     string   `json:"id"`
		Key    string   `json:"key"`
		Prefix string   `json:"prefix"`
		Scopes []string `json:"scopes"`
		Name   string   `json:"name,omitempty"`
	}
	return json.Marshal(shown{k.ID, k.Key.Reveal(), k.Prefix, k.Scopes, k.Name})
}

// KeyRequest asks for a new API key.
type KeyRequest struct {
	WorkspaceID string
	Name        string
	Scopes      []string
	// DPoPJKT, when set, binds the key to the DPoP key with this RFC 7638 thumbprint.
	DPoPJKT string
	Actor   string
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$`)

// ValidKeyName reports whether name may name an API key.
func ValidKeyName(name string) error {
	if !namePattern.MatchString(name) {
		return problem.ErrInvalidRequest.WithField("name", "1–63 letters, digits, spaces, dots, dashes or underscores")
	}
	return nil
}

// ValidScopes checks the scopes of a new key; only a caller holding workspaces:write
// (allowWorkspaces) may grant it.
func ValidScopes(scopes []string, allowWorkspaces bool) error {
	if len(scopes) == 0 {
		return problem.ErrInvalidRequest.WithField("scopes", "at least one scope is required")
	}
	for _, s := range scopes {
		if !slices.Contains(AllScopes, s) {
			return problem.ErrInvalidRequest.WithField("scopes", "unknown scope "+strconv.Quote(s))
		}
		if s == ScopeWorkspacesWrite && !allowWorkspaces {
			return problem.ErrForbidden.WithDetail("only a key with workspaces:write can grant it")
		}
	}
	return nil
}

// CreateAPIKey makes a key in a workspace (audited api_key.created) and returns it: the
// only time it is shown. The request is taken as checked (ValidKeyName, ValidScopes).
func (s *Service) CreateAPIKey(ctx context.Context, req KeyRequest) (CreatedKey, error) {
	key := NewAPIKey()
	h, kid, err := s.hasher.Hash(ctx, key)
	if err != nil {
		return CreatedKey{}, err
	}
	row := store.APIKey{ID: ids.New(ids.APIKey), WorkspaceID: req.WorkspaceID, Name: req.Name, Prefix: KeyDisplayPrefix(key),
		Hash: h, HashKeyID: kid, Scopes: slices.Compact(slices.Sorted(slices.Values(req.Scopes))), CreatedAt: s.now().UTC()}
	ev := apiKeyCreated(req.WorkspaceID, req.Actor, row.ID)
	if req.DPoPJKT != "" {
		err = s.store.InsertDPoPAPIKey(ctx, row, req.DPoPJKT, ev)
	} else {
		err = s.store.InsertAPIKey(ctx, row, ev)
	}
	if err != nil {
		return CreatedKey{}, err
	}
	return CreatedKey{ID: row.ID, Key: key, Prefix: row.Prefix, Scopes: row.Scopes, Name: req.Name}, nil
}

func apiKeyCreated(workspaceID, actor, id string) audit.Event {
	return audit.Event{WorkspaceID: workspaceID, Type: audit.APIKeyCreated, Actor: actor, Outcome: audit.Success,
		Data: audit.Data("api_key_id", id)}
}

// ErrBootstrapKeyRevoked is EnsureBootstrapKey's answer for a bootstrap key that was
// revoked: it stays revoked, and start-up goes on without it.
var ErrBootstrapKeyRevoked = errors.New("admin: the bootstrap key was revoked and stays revoked")

// EnsureBootstrapKey makes sure key exists in the default workspace with the scopes
// admin and workspaces:write. It never logs or returns the key. It looks the key up under
// every apikey-hash key there has ever been, retired ones included (a retired key is
// opened for this: one KMS call each, at start-up only): if any row of the key is revoked
// it returns ErrBootstrapKeyRevoked and creates nothing; if a row exists under an earlier
// hashing key, that row stays the key's.
func (s *Service) EnsureBootstrapKey(ctx context.Context, key vault.Secret) error {
	if !ValidKeyFormat(key.Reveal()) {
		return errors.New("the bootstrap key is not of the form ap_<at least 32 url-safe characters>")
	}
	keys, err := s.hasher.keys.every(ctx)
	if err != nil {
		return fmt.Errorf("the API-key hashing keys: %w", err)
	}
	hs := hashesUnder(keys, key) // the active key's first
	rows, err := s.store.APIKeysByHashes(ctx, hashValues(hs))
	if err != nil {
		return err
	}
	for _, r := range rows {
		if r.RevokedAt != nil {
			return ErrBootstrapKeyRevoked
		}
	}
	if _, ok := validKey(hs, rows); ok {
		return nil
	}
	row := store.APIKey{ID: ids.New(ids.APIKey), WorkspaceID: store.DefaultWorkspaceID, Name: "bootstrap",
		Prefix: KeyDisplayPrefix(key), Hash: hs[0].hash, HashKeyID: hs[0].kid,
		Scopes: store.Strings{ScopeAdmin, ScopeWorkspacesWrite}, CreatedAt: s.now().UTC()}
	_, err = s.store.EnsureAPIKey(ctx, row, apiKeyCreated(store.DefaultWorkspaceID, "bootstrap", row.ID))
	return err
}

// APIKey is a listed key (never the key itself).
type APIKey struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Prefix    string    `json:"prefix"`
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	// HashKeyID is the kid of the key that hashed it; HashKeyStale is true when that is no
	// longer the active hashing key (the key keeps working; replace it to retire the old
	// hashing key).
	HashKeyID    string `json:"hash_key_id"`
	HashKeyStale bool   `json:"hash_key_stale"`
}

// ListAPIKeys lists a workspace's unrevoked keys.
func (s *Service) ListAPIKeys(ctx context.Context, workspaceID string) ([]APIKey, error) {
	keys, err := s.store.ListAPIKeys(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	active, err := s.hasher.keys.Active(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]APIKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, APIKey{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes, CreatedAt: k.CreatedAt.UTC(),
			HashKeyID: k.HashKeyID, HashKeyStale: k.HashKeyID != active.kid})
	}
	return out, nil
}

// RevokeAPIKey revokes a key of a workspace (audited api_key.revoked); this replica
// refuses it at once, the others within their authentication cache's TTL.
func (s *Service) RevokeAPIKey(ctx context.Context, workspaceID, id, actor string) error {
	ev := audit.Event{WorkspaceID: workspaceID, Type: audit.APIKeyRevoked, Actor: actor, Outcome: audit.Success,
		Data: audit.Data("api_key_id", id)}
	if err := s.store.RevokeAPIKey(ctx, workspaceID, id, ev); err != nil {
		return err
	}
	s.auth.forget()
	return nil
}

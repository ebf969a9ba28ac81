package proxy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

const (
	checkpointKeyPurpose = "audit_checkpoint"
	checkpointKeyID      = "pk_audit_checkpoint_1"
)

// CheckpointKeys holds the deployment's Ed25519 key that signs audit checkpoints
// (internal/audit/checkpoint.go). Like the API-key hashing key it is one of the proxy's own
// keys: a 32-byte seed from crypto/rand, generated on first use, stored sealed under the
// client-secret keyring, so a database dump alone cannot forge a checkpoint. Its public
// key is published (GET /v1/audit/checkpoint-keys) and carried in every checkpoint.
type CheckpointKeys struct {
	store   *store.Store
	secrets *vault.Keyring

	mu     sync.Mutex
	signer *audit.Signer
}

// NewCheckpointKeys returns the key holder; the key is loaded (or created) on first use
// and retried on failure, so a KMS that is down only delays it.
func NewCheckpointKeys(s *store.Store, secrets *vault.Keyring) *CheckpointKeys {
	return &CheckpointKeys{store: s, secrets: secrets}
}

// Signer returns the checkpoint signer.
func (k *CheckpointKeys) Signer(ctx context.Context) (*audit.Signer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.signer != nil {
		return k.signer, nil
	}
	bind := vault.Binding{WorkspaceID: systemWorkspace, OwnerID: checkpointKeyID, Field: "key"}
	pk, err := k.store.ProxyKeyByID(ctx, checkpointKeyID)
	if errors.Is(err, store.ErrNotFound) {
		seed := make([]byte, 32)
		if _, rerr := rand.Read(seed); rerr != nil {
			return nil, rerr
		}
		sealed, serr := k.secrets.Seal(ctx, bind, vault.SecretFromBytes(seed))
		clear(seed)
		if serr != nil {
			return nil, serr
		}
		pk, err = k.store.InsertProxyKeyIfAbsent(ctx, store.ProxyKey{ID: checkpointKeyID, Purpose: checkpointKeyPurpose,
			State: "active", Sealed: sealed, CreatedAt: time.Now().UTC()})
	}
	if err != nil {
		return nil, err
	}
	sec, err := k.secrets.Open(ctx, bind, pk.Sealed)
	if err != nil {
		return nil, fmt.Errorf("open the audit checkpoint key: %w", err)
	}
	s, err := audit.NewSigner(sec.Bytes())
	sec.Wipe()
	if err != nil {
		return nil, err
	}
	k.signer = s
	return s, nil
}

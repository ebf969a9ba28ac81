package admin

import (
	"context"
	"crypto/ed25519"
	"sync"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

const (
	checkpointKeyPurpose = "audit_checkpoint"
	checkpointKeyID      = "pk_audit_checkpoint_1"
)

// CheckpointKeys holds the deployment's Ed25519 keys that sign audit checkpoints
// (internal/audit/checkpoint.go): the checkpoint key set (keyset.go), each key a 32-byte
// seed from crypto/rand stored sealed under the client-secret keyring, so a database dump
// alone cannot forge a checkpoint. The active key signs; a rotated key never retires, so
// every checkpoint ever signed still verifies. Their public keys are published (GET
// /v1/audit/checkpoint-keys) and each checkpoint carries its own and its kid
// (audit.KeyIDOf of the public key).
type CheckpointKeys struct {
	keys *KeySet

	mu      sync.Mutex
	signers map[string]*audit.Signer // by proxy key id
}

// newCheckpointKeys returns the key holder; the keys are loaded (or the first created) on
// first use and retried on failure, so a KMS that is down only delays it.
func newCheckpointKeys(keys *KeySet) *CheckpointKeys {
	return &CheckpointKeys{keys: keys, signers: map[string]*audit.Signer{}}
}

// Signer returns the signer of the active checkpoint key.
func (k *CheckpointKeys) Signer(ctx context.Context) (*audit.Signer, error) {
	sk, err := k.keys.Active(ctx)
	if err != nil {
		return nil, err
	}
	return k.signer(sk)
}

func (k *CheckpointKeys) signer(sk *Key) (*audit.Signer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s := k.signers[sk.kid]; s != nil {
		return s, nil
	}
	s, err := audit.NewSigner(sk.material)
	if err != nil {
		return nil, err
	}
	k.signers[sk.kid] = s
	return s, nil
}

// PublishedKey is one checkpoint public key and its state.
type PublishedKey struct {
	KeyID     string
	State     string // active or verify-only
	PublicKey ed25519.PublicKey
}

// Published returns every checkpoint key that verifies (they never retire), the active
// one first.
func (k *CheckpointKeys) Published(ctx context.Context) ([]PublishedKey, error) {
	ks, err := k.keys.Verifiers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PublishedKey, 0, len(ks))
	for _, sk := range ks {
		s, err := k.signer(sk)
		if err != nil {
			return nil, err
		}
		out = append(out, PublishedKey{KeyID: s.KeyID(), State: sk.state, PublicKey: s.PublicKey()})
	}
	return out, nil
}

// TrustedKeyIDs returns the kids of every checkpoint key of the deployment (audit.KeyIDOf).
func (k *CheckpointKeys) TrustedKeyIDs(ctx context.Context) ([]string, error) {
	pub, err := k.Published(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(pub))
	for i, p := range pub {
		out[i] = p.KeyID
	}
	return out, nil
}

// Package kms holds the key-encryption keys (KEKs) that wrap authpipe-proxy's data keys.
//
// A KEK never sees a credential: it only wraps and unwraps the 256-bit data-encryption keys
// (DEKs) of the vault, binding each wrapped DEK to associated data (the workspace and the
// purpose) so that a wrapped key cannot be moved to another workspace. Backends live in the
// sub-packages (local, awskms, vaulttransit, pkcs11, gcpkms, azurekv) and are opened from a URI by
// kms/backends. The conformance suite in kms/kmstest runs against every backend.
package kms

import (
	"context"
	"errors"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// KEK wraps and unwraps data keys. Implementations are safe for concurrent use.
type KEK interface {
	// ID names the key. It is recorded with every wrapped DEK, and it is how a keyring
	// that holds several KEKs finds the one that can unwrap a DEK. It never changes for
	// the life of the key (versions of the key are reported per wrap, see WrappedKey).
	ID() string
	// Wrap encrypts dek under the KEK, bound to aad.
	Wrap(ctx context.Context, dek, aad []byte) (WrappedKey, error)
	// Unwrap reverses Wrap. A WrappedKey whose KEKID is not ID() fails with
	// ErrUnknownKey; a wrong aad or a tampered ciphertext fails with ErrDecrypt.
	Unwrap(ctx context.Context, w WrappedKey, aad []byte) ([]byte, error)
	// Ping reports whether the key can be used now (for readiness, never liveness).
	Ping(ctx context.Context) error
	// Close releases sessions and connections.
	Close() error
}

// WrappedKey is a DEK encrypted under a KEK, with the identity and version of that KEK.
type WrappedKey struct {
	KEKID      string // KEK.ID() of the key that wrapped it
	KEKVersion string // the backend's key version ("" where the backend has none)
	Ciphertext []byte
}

// Sentinel errors. Backends wrap them with %w so callers can tell an outage (fail closed
// with 503) from a key that will never open.
var (
	// ErrUnavailable: the KMS or HSM cannot be reached, timed out or throttled.
	// Requests that need the KEK answer 503 kms_unavailable.
	ErrUnavailable = problem.Sentinel(problem.ErrKMSUnavailable, "kms: unavailable")
	// ErrDecrypt: authentication failed (wrong associated data, tampered ciphertext).
	ErrDecrypt = errors.New("kms: unwrap failed")
	// ErrUnknownKey: the wrapped key names a KEK that is not configured.
	ErrUnknownKey = errors.New("kms: unknown key")
	// ErrConfig: the URI or the key material is unusable.
	ErrConfig = errors.New("kms: bad configuration")
)

// DEKSize is the size of every data key the vault asks a KEK to wrap.
const DEKSize = 32

// Package vault owns the encryption of every secret authpipe-proxy stores: the Secret
// type that refuses to print itself, the envelope format of one sealed field, the
// per-workspace data-encryption keys (DEKs) and the in-memory cache of unwrapped DEKs.
// vault/store persists the DEKs and the sealed rows.
//
// # Keys
//
// Each workspace has one 256-bit DEK per Purpose (credentials, client secrets); each
// purpose has its own Keyring, its own KEK ring (package kms) and its own table. A DEK is
// stored only wrapped by a KEK, with associated data binding it to its workspace, purpose
// and id, so a wrapped DEK copied to another workspace's row does not unwrap. Deleting a
// workspace's DEKs makes all of its ciphertext unreadable (crypto-shredding; call
// Keyring.Forget so the cache lets go too).
//
// # Envelopes
//
// Each field is sealed on its own with AES-256-GCM (NIST SP 800-38D; the AEAD interface
// of RFC 5116) under a random 96-bit nonce:
//
//	0x01 ‖ len(dek id) ‖ dek id ‖ nonce (12) ‖ ciphertext ‖ tag (16)
//
// The associated data is the length-prefixed header, workspace id, owner id (the
// connection, or the provider configuration for a client secret), field name and purpose.
// A value moved to another row, field, connection, workspace or purpose — or a credential
// row relinked to another connection — fails to open with ErrDecrypt.
//
// Random nonces: NIST SP 800-38D §8.3 caps one key at 2^32 random-nonce seals; at that
// count the chance of a repeated nonce is about 2^-33. A workspace's credentials are
// sealed on create and on refresh, many orders of magnitude below the cap; rotate the
// DEK (a new active DEK) long before it.
//
// # The hot path
//
// A warm Seal or Open reads an RWMutex-guarded map, makes no KMS call and no database
// read, and allocates once: its output (the envelope, or the plaintext the Secret holds).
// A cache miss reads the store and unwraps through the KMS once per DEK, however many
// requests miss at the same moment (golang.org/x/sync/singleflight). When the KMS cannot
// be reached and the DEK is not cached, Seal and Open fail with ErrKMSUnavailable: there
// is no weaker fallback.
package vault

// Package pkcs11 is the HSM KEK backend: an AES-256 key that never leaves a PKCS#11 token
// wraps the vault's data keys with CKM_AES_GCM.
//
// The key is named by an RFC 7512 PKCS#11 URI (see URI and ParseURI):
//
//	pkcs11:token=authpipe;object=authpipe-kek?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/hsm-pin
//
// The token is selected by its label, never by slot id (slot ids are not stable: SoftHSM2
// assigns random ones). Open checks that the key is an AES-256 key with CKA_SENSITIVE set
// and CKA_EXTRACTABLE cleared, and refuses any other; GenerateKey creates such a key with
// C_GenerateKey, so the key material exists only inside the token.
//
// Wrap draws a fresh 96-bit IV from crypto/rand, passes the associated data as the GCM AAD
// and asks for a 128-bit tag: the wrapped key is IV ‖ ciphertext ‖ tag (NIST SP 800-38D).
// Unwrap maps an authentication failure (CKR_ENCRYPTED_DATA_INVALID, or CKR_GENERAL_ERROR
// as SoftHSM2 reports it) to kms.ErrDecrypt, and device, session and token-presence
// errors to kms.ErrUnavailable, so the vault fails closed with 503.
//
// Each Backend keeps a bounded pool of sessions (x-max-sessions, default 16). PKCS#11
// state is process-wide (C_Initialize once per library, one login per token per process),
// so the package keeps one reference-counted handle per library and one login per token.
//
// The backend needs cgo. A binary built with CGO_ENABLED=0 still compiles: its Open and
// GenerateKey return kms.ErrConfig.
package pkcs11

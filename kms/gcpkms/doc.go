// Package gcpkms is the Google Cloud KMS key-encryption key: a symmetric CryptoKey
// (purpose ENCRYPT_DECRYPT, GOOGLE_SYMMETRIC_ENCRYPTION, AES-256-GCM in Cloud KMS, software
// or HSM protection level) that wraps the vault's data keys with the KMS Encrypt and
// Decrypt RPCs over gRPC. The key material never leaves Cloud KMS.
//
// URI: gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[?endpoint=URL]. endpoint
// overrides the service endpoint: https://HOST[:PORT] (a Private Service Connect endpoint),
// or http://127.0.0.1:PORT for a local test server, reached over plain gRPC without any
// credential (refused for any host that is not loopback). Credentials are Application
// Default Credentials: GKE Workload Identity (the metadata server), an attached service
// account, GOOGLE_APPLICATION_CREDENTIALS (including workload identity federation
// configurations). The principal needs roles/cloudkms.cryptoKeyEncrypterDecrypter on the
// key, nothing else.
//
// Associated data is bound as Cloud KMS's additional_authenticated_data, prefixed with
// "authpipe:v1:" (Ping uses "authpipe:ping", so a ping ciphertext never unwraps as a DEK,
// and an empty aad still binds something: a ciphertext made without AAD never opens).
// Cloud KMS feeds it to AES-GCM as additional data; it is not secret and it is not logged
// by Cloud Audit Logs.
//
// Integrity: every request carries plaintext_crc32c (or ciphertext_crc32c) and
// additional_authenticated_data_crc32c; a response must say verified_plaintext_crc32c and
// verified_additional_authenticated_data_crc32c, name a version of the configured key, and
// carry a ciphertext_crc32c (or plaintext_crc32c) that matches what arrived. A mismatch
// either way is data corrupted in transit: the call is retried once, then fails as
// kms.ErrUnavailable (never as a corrupt DEK).
//
// Versions: Encrypt names the CryptoKey, so Cloud KMS uses its primary version; the version
// id from the response's name (…/cryptoKeyVersions/N) is recorded as WrappedKey.KEKVersion.
// Cloud KMS finds the version again from the ciphertext, so after a rotation inside Cloud
// KMS (a new primary version) old DEKs still unwrap as long as their version is enabled.
// Disabling or destroying a version makes its DEKs fail with kms.ErrUnavailable (a key that
// cannot be used now is an outage to fail closed on, not a corrupt DEK): re-wrap them
// first (`authpipe-proxy kek rotate` with the same URI re-wraps under the primary version).
//
// Errors: INVALID_ARGUMENT from Decrypt ("Decryption failed: …": wrong AAD, tampered
// ciphertext, a ciphertext of another key) is kms.ErrDecrypt; every other failure —
// UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED and INTERNAL after bounded retries
// (three attempts with full-jitter backoff, all within the per-call timeout, 5 s by
// default), PERMISSION_DENIED, UNAUTHENTICATED, NOT_FOUND, FAILED_PRECONDITION (a disabled
// or destroyed version) and checksum mismatches — is kms.ErrUnavailable.
package gcpkms

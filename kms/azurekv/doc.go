// Package azurekv is the Azure Key Vault key-encryption key: a key in a Key Vault
// (*.vault.azure.net) or a Managed HSM (*.managedhsm.azure.net) that wraps the vault's
// data keys with the Key Vault wrapKey and unwrapKey operations. The key material never
// leaves Key Vault.
//
// URI: azurekv://<vault>.vault.azure.net/keys/<name>[/<version>][?alg=ALG][&endpoint=URL]
// (or <hsm>.managedhsm.azure.net, and the sovereign clouds' vault.azure.cn,
// vault.usgovcloudapi.net, managedhsm.azure.cn, managedhsm.usgovcloudapi.net). Without a
// version, wraps use the key's current version; with one, that version. endpoint is for
// tests only: https://127.0.0.1:PORT (loopback only; Private Link keeps the vault's own
// host name, so production never needs it).
//
// Algorithm (alg): RSA-OAEP-256 by default on a vault host, A256KW by default on a Managed
// HSM host. Key Vault's vaults hold only RSA and EC keys, so RSA-OAEP-256 (OAEP with
// SHA-256, the strongest wrap an RSA key offers there; RSA1_5 and RSA-OAEP with SHA-1 are
// refused) is the only sound choice; a Managed HSM also holds AES keys (oct-HSM), and AES
// key wrap (RFC 3394) under a symmetric HSM key is preferred there: it is authenticated
// by a secret key (see below), and cheaper. alg=RSA-OAEP-256 selects an RSA key in a
// Managed HSM.
//
// Associated data: wrapKey takes none, so it is bound inside the wrapped value. The
// backend wraps the 80-byte structure DEK (32) ‖ nonce (16, random) ‖ SHA-256("authpipe:
// azurekv:v1" ‖ 0x00 ‖ aad) (32), and Unwrap checks the hash in constant time against the
// aad it is given: a wrapped DEK moved to another workspace or purpose fails with
// kms.ErrDecrypt. The wrap is non-malleable (OAEP is IND-CCA2; AES key wrap has a 64-bit
// integrity check over the whole structure), so nobody can change the hash inside without
// the key. The nonce makes AES key wrap, which is deterministic, produce a new ciphertext
// for each wrap. What RSA cannot give: the public key is not secret, so whoever holds it
// can make a wrapped value that unwraps (a database writer could plant a DEK of their
// choosing). Use a Managed HSM AES key (A256KW) where that matters; see
// docs/threat-model.md.
//
// Versions: the version in the kid of each wrapKey response is recorded as
// WrappedKey.KEKVersion, and Unwrap calls unwrapKey on exactly that version, so after a
// rotation inside Key Vault (a new key version, by hand or by a rotation policy) old DEKs
// still open while their version is enabled.
//
// Credentials: azidentity.NewDefaultAzureCredential (AKS Workload Identity through
// AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID; managed identity; the
// environment's service principal). The client follows Key Vault's bearer challenge: the
// first request goes without a token, the 401's WWW-Authenticate names the tenant and the
// resource, and the token is requested for that resource, which must be the vault's own
// domain. The backend also pins the token's scope to https://<domain>/.default (vault.
// azure.net or managedhsm.azure.net): a token is never requested for anything else. The
// principal needs wrapKey and unwrapKey on the key (the "Key Vault Crypto Service
// Encryption User" role, or an access policy with Wrap Key and Unwrap Key; Managed HSM:
// "Managed HSM Crypto Service Encryption User").
//
// Errors: a 400 from unwrapKey (the ciphertext does not decrypt) and a hash mismatch are
// kms.ErrDecrypt; every other failure — network errors, timeouts, 429 and 5xx after
// bounded retries (two by default, within the per-call timeout, 5 s by default), 401,
// 403 (no permission, a disabled key), 404 (a deleted key or version) — is
// kms.ErrUnavailable: fail closed with 503.
package azurekv

// Package vaulttransit is the KEK backend on HashiCorp Vault's (or OpenBao's) Transit
// secrets engine: the key never leaves Vault, which encrypts and decrypts DEKs for us.
//
// URI: vault-transit://<host[:port]>/<mount>/<key>[?tls=false&namespace=<ns>]. TLS is
// verified by default (VAULT_CACERT, VAULT_CAPATH, VAULT_CACERT_BYTES, VAULT_CLIENT_CERT,
// VAULT_CLIENT_KEY and VAULT_TLS_SERVER_NAME are honoured; VAULT_SKIP_VERIFY=true is
// refused). tls=false means plain HTTP, for dev servers and tests only.
//
// Auth (exactly one): VAULT_TOKEN; AppRole with VAULT_ROLE_ID and VAULT_SECRET_ID (mount
// VAULT_APPROLE_MOUNT, default "approle"); or Kubernetes with VAULT_K8S_ROLE and the
// service account token at VAULT_K8S_TOKEN_PATH (mount VAULT_K8S_MOUNT, default
// "kubernetes"). Login tokens are renewed by logging in again at two thirds of their TTL,
// or at once when Vault answers 403.
//
// Wrap is POST <mount>/encrypt/<key> with the DEK as plaintext and the KEK's associated
// data as associated_data, which Vault binds as AES-GCM additional data for AEAD key types
// (aes128-gcm96, aes256-gcm96, chacha20-poly1305). The ciphertext is Vault's own
// "vault:vN:<base64>" string, and N is recorded as the WrappedKey's KEKVersion. Unwrap is
// <mount>/decrypt/<key> with the same associated_data. rewrap and datakey are not used:
// neither carries associated data. Before its first wrap, the backend proves that Vault
// really binds associated_data (an older Vault, or a non-AEAD key, silently ignores it)
// and refuses to wrap otherwise.
//
// Key rotation is Vault's: after `vault write -f transit/keys/<key>/rotate`, new wraps use
// the new version and old ones still unwrap until min_decryption_version excludes them,
// which then fail with kms.ErrDecrypt. The token's policy needs only
//
//	path "<mount>/encrypt/<key>" { capabilities = ["update"] }
//	path "<mount>/decrypt/<key>" { capabilities = ["update"] }
//
// (Without "create", Vault's encrypt cannot silently create a mistyped key.)
//
// Errors: network failures, timeouts, 429 and 5xx are kms.ErrUnavailable after bounded
// retries (two by default) within a per-call timeout (5 s by default); 403 is
// kms.ErrUnavailable too (fail closed) with a message naming the policy; a 400 from decrypt
// is kms.ErrDecrypt.
package vaulttransit

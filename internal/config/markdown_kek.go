package config

// kekBackendsMarkdown is the "KEK backends" section of docs/configuration.md: the URI forms
// the kms/ backends accept (kms/backends opens them; each package's doc is the reference).
const kekBackendsMarkdown = `
## KEK backends

Any KEK variable takes any of these; rotation (` + "`authpipe-proxy kek rotate`" + `) works from any
backend to any other. A KEK that cannot be used now (unreachable, throttled past the retries,
disabled, no permission) fails closed: ` + "`503 kms_unavailable`" + ` and ` + "`/readyz`" + ` not ready.

| URI | backend | notes |
|---|---|---|
| ` + "`local:///path/kek.key`" + ` | a 32-byte key in a file | development only (refused as current KEK in production). |
| ` + "`awskms://<key id, alias/NAME or ARN>[?region=R][&endpoint=URL]`" + ` | AWS KMS | SDK default credentials (IRSA); ` + "`kms:Encrypt`" + `, ` + "`kms:Decrypt`" + `. |
| ` + "`vault-transit://<host:port>/<mount>/<key>[?tls=false&namespace=NS]`" + ` | Vault / OpenBao Transit | ` + "`VAULT_TOKEN`" + `, AppRole or Kubernetes auth. |
| ` + "`pkcs11:token=..;object=..?module-path=..&pin-source=..`" + ` | a PKCS#11 HSM | the ` + "`pkcs11`" + ` image (cgo). |
| ` + "`gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[?endpoint=https://HOST[:PORT]]`" + ` | Google Cloud KMS | Encrypt/Decrypt on the CryptoKey (its primary version wraps; the version id is recorded with each DEK and Cloud KMS finds it again to unwrap), AAD bound as ` + "`additional_authenticated_data`" + `, CRC32C integrity fields checked both ways. Credentials: Application Default Credentials (GKE Workload Identity, attached service account, ` + "`GOOGLE_APPLICATION_CREDENTIALS`" + `); role ` + "`roles/cloudkms.cryptoKeyEncrypterDecrypter`" + ` on the key. ` + "`endpoint`" + ` is a Private Service Connect endpoint (` + "`http://127.0.0.1:PORT`" + ` only for local tests: plain gRPC, no credentials, refused in production). |
| ` + "`azurekv://<vault>.vault.azure.net/keys/<name>[/<version>][?alg=RSA-OAEP-256\\|A256KW]`" + ` and ` + "`azurekv://<hsm>.managedhsm.azure.net/keys/<name>[/<version>]`" + ` (and the sovereign clouds' ` + "`vault.azure.cn`" + `, ` + "`vault.usgovcloudapi.net`" + `, ` + "`managedhsm.azure.cn`" + `, ` + "`managedhsm.usgovcloudapi.net`" + `) | Azure Key Vault, Managed HSM | wrapKey/unwrapKey: RSA-OAEP-256 for a vault's RSA keys (default on vault hosts), A256KW for a Managed HSM's AES keys (default on Managed HSM hosts; authenticated by a secret key, unlike RSA whose public key lets anyone make a wrapped value). wrapKey takes no AAD, so the backend wraps DEK ‖ nonce ‖ SHA-256(aad) and checks the hash on unwrap. The key version from each response's kid is recorded with the DEK and used to unwrap it, so rotation inside Key Vault keeps old DEKs openable. Without a version wraps use the current one. Credentials: ` + "`DefaultAzureCredential`" + ` (AKS Workload Identity, managed identity, service principal environment); the token is requested only for the vault's own domain. Role "Key Vault Crypto Service Encryption User" (or "Managed HSM Crypto Service Encryption User") on the key. ` + "`endpoint=https://127.0.0.1:PORT`" + ` exists for local tests only (refused in production). |
`

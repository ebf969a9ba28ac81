package vault

import "github.com/authpipe/authpipe-proxy/internal/secret"

// Secret holds a credential (token, API key, client secret) in memory and refuses to
// print it: every printing, logging and marshalling path shows Redacted; only Reveal and
// Bytes hand out the value. It is defined in the leaf package internal/secret so that
// configuration can hold secrets without importing the vault; this alias keeps one type
// under the vault's name.
type Secret = secret.Secret

// Redacted is what every printing, logging and marshalling path shows instead of a Secret.
const Redacted = secret.Redacted

// NewSecret copies s into a Secret. The string itself cannot be wiped; prefer
// SecretFromBytes where the value arrives as bytes.
func NewSecret(s string) Secret { return secret.New(s) }

// SecretFromBytes takes ownership of b: the caller must not use b afterwards.
func SecretFromBytes(b []byte) Secret { return secret.FromBytes(b) }

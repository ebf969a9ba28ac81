package oauthflow

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// PKCE (RFC 7636) with the S256 method only. The proxy sends a code challenge on every
// authorization request, whether or not the catalog says the provider checks it: a
// provider that ignores the parameters loses nothing, one that checks them gains the
// protection. The "plain" method is never used (RFC 9700 section 2.1.1).

// ChallengeMethod is the only code_challenge_method the proxy sends.
const ChallengeMethod = "S256"

// verifierBytes is the entropy of a verifier: 256 bits, base64url-encoded to 43 characters
// (RFC 7636 section 4.1 recommends exactly this).
const verifierBytes = 32

// ErrInvalidVerifier reports a code verifier that RFC 7636 section 4.1 does not allow.
var ErrInvalidVerifier = errors.New("oauthflow: invalid PKCE code verifier")

// NewVerifier returns a fresh code verifier: 32 bytes from crypto/rand, base64url without
// padding (43 characters).
func NewVerifier() (string, error) {
	return newVerifier(rand.Reader)
}

func newVerifier(r io.Reader) (string, error) {
	b := make([]byte, verifierBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("oauthflow: reading randomness for a PKCE verifier: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Challenge returns the S256 code challenge of verifier:
// BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) (RFC 7636 section 4.2).
func Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ValidateVerifier checks that v is 43 to 128 characters of [A-Za-z0-9-._~]
// (RFC 7636 section 4.1). The error never contains v.
func ValidateVerifier(v string) error {
	if len(v) < 43 || len(v) > 128 {
		return fmt.Errorf("%w: length must be 43 to 128", ErrInvalidVerifier)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~') {
			return fmt.Errorf("%w: character outside [A-Za-z0-9-._~]", ErrInvalidVerifier)
		}
	}
	return nil
}

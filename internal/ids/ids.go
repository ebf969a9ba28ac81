// Package ids makes the opaque, prefixed identifiers of the API (ws_, conn_, cs_, apk_,
// evt_, ...): 128 bits from crypto/rand in lower-case base32, so they are unguessable and
// safe in URLs.
package ids

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Prefixes of the API's identifiers.
const (
	Workspace      = "ws"
	Connection     = "conn"
	ConnectSession = "cs"
	APIKey         = "apk"
	Event          = "evt"
	Provider       = "prv"
	DEK            = "dek"
	ProxyKey       = "pk"
	Deployment     = "dep"
	Revocation     = "rev"
	Incident       = "inc"
)

// DefaultWorkspace is the id of the workspace named "default" that always exists.
const DefaultWorkspace = Workspace + "_default"

// New returns prefix + "_" + 26 random base32 characters.
func New(prefix string) string {
	return prefix + "_" + Random(16)
}

// Encode writes src in the identifiers' lower-case base32 to dst, which must hold
// EncodedLen(len(src)) bytes (for callers that build an id without allocating twice).
func Encode(dst, src []byte) { enc.Encode(dst, src) }

// DecodeCanonical decodes s from the identifiers' base32, refusing any string that is not
// exactly how Encode writes its bytes (base32's spare trailing bits must be zero), so that
// one byte string has one identifier.
func DecodeCanonical(s string) ([]byte, bool) {
	b, err := enc.DecodeString(s)
	if err != nil || enc.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// EncodedLen is the length of n bytes in the identifiers' base32.
func EncodedLen(n int) int { return enc.EncodedLen(n) }

// Random returns n random bytes from crypto/rand in lower-case base32.
func Random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms (Go ≥ 1.24)
	return enc.EncodeToString(b)
}

// HasPrefix reports whether id looks like an identifier with this prefix.
func HasPrefix(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix+"_")
	return ok && rest != "" && len(rest) <= 64
}

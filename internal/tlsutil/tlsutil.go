// Package tlsutil parses the per-destination TLS policy of outbound calls: SPKI pins
// (RFC 7469 section 2.4, "sha256/<base64>") and the min_tls_version setting. A
// provider is reached over TLS 1.3 unless it is configured with min_tls_version "1.2",
// and, when it lists pins, only through a chain that carries one of them
// (outbound.Clients builds the client of each policy).
//
// Certificate generation for tests lives in the tlstest sub-package.
package tlsutil

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"strings"
)

// MaxPins bounds a pin list: enough for a current key, a next key and a backup.
const MaxPins = 8

// ParsePin decodes one pin, "sha256/" + the standard base64 of a SHA-256 digest of a
// SubjectPublicKeyInfo; ok is false when p is not of that form.
func ParsePin(p string) (sum [sha256.Size]byte, ok bool) {
	b64, ok := strings.CutPrefix(p, "sha256/")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(raw) != sha256.Size {
		return sum, false
	}
	return [sha256.Size]byte(raw), true
}

// ValidatePins checks that every pin is "sha256/" + the standard base64 of 32 bytes
// and that there are at most MaxPins. Messages name positions, not values.
func ValidatePins(pins []string) error {
	if len(pins) > MaxPins {
		return fmt.Errorf("at most %d pins", MaxPins)
	}
	for i, p := range pins {
		if _, ok := ParsePin(p); !ok {
			return fmt.Errorf("pin %d is not sha256/<base64 of 32 bytes>", i+1)
		}
	}
	return nil
}

// ParseTLSVersion maps a provider's min_tls_version setting to a minimum TLS version
// (outbound.Policy.MinTLSVersion): "" and "1.3" mean TLS 1.3, "1.2" means TLS 1.2;
// anything else is an error.
func ParseTLSVersion(s string) (uint16, error) {
	switch s {
	case "", "1.3":
		return tls.VersionTLS13, nil
	case "1.2":
		return tls.VersionTLS12, nil
	default:
		return 0, fmt.Errorf("outbound: unsupported minimum TLS version %q (want 1.2 or 1.3)", s)
	}
}

// Package secret holds Secret, the in-memory credential that refuses to print itself.
// It is a leaf so configuration can hold secrets without importing the vault; the vault
// exports the same type as vault.Secret.
package secret

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"unsafe"
)

// Redacted is what every printing, logging and marshalling path shows instead of a Secret.
const Redacted = "[REDACTED]"

// Secret holds a credential (token, API key, client secret) in memory and refuses to
// print it. String, GoString, Format (every verb), MarshalJSON, MarshalText and LogValue
// all give "[REDACTED]"; only Reveal and Bytes hand out the value.
//
// The layout is deliberate. fmt cannot call methods on unexported struct fields, so a
// plain []byte field would print as its bytes ("{b:[103 104 111 ...]}", or the raw text
// with %s) whenever a Secret sits in another type's unexported field and that type is
// printed; so would a *[]byte or a pointer to a struct, because fmt dereferences those
// when it reports a bad verb. A *byte is always printed as an address, so the value is
// held as a pointer to its first byte and a length, and rebuilt with unsafe.Slice (the
// only use of unsafe in this package; the pointer always comes from a live slice of at
// least n bytes). Copies of a Secret share the bytes: Wipe on one zeroes all of them.
//
// UnmarshalJSON and UnmarshalText accept input, so request bodies can decode into a
// Secret; the round trip through JSON is deliberately lossy. Persist with vault.Keyring.Seal.
type Secret struct {
	p *byte // first byte of the value, nil when empty
	n int
}

// New copies s into a Secret. The string itself cannot be wiped; prefer
// FromBytes where the value arrives as bytes.
func New(s string) Secret {
	return FromBytes([]byte(s))
}

// FromBytes takes ownership of b: the caller must not use b afterwards.
func FromBytes(b []byte) Secret {
	if len(b) == 0 {
		return Secret{}
	}
	return Secret{p: &b[0], n: len(b)}
}

func (s Secret) bytes() []byte {
	if s.p == nil {
		return nil
	}
	return unsafe.Slice(s.p, s.n)
}

// Reveal returns the value as a string (a copy, which cannot be wiped). Call it only
// where the value leaves the process: an HTTP response body, an outbound request header.
func (s Secret) Reveal() string { return string(s.bytes()) }

// Bytes returns the value without copying. The caller must neither modify nor retain it.
func (s Secret) Bytes() []byte { return s.bytes() }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return len(s.bytes()) == 0 }

// Len is the length of the value in bytes.
func (s Secret) Len() int { return len(s.bytes()) }

// Equal compares in constant time for equal lengths (the length itself is not hidden).
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare(s.bytes(), o.bytes()) == 1
}

// Prefix returns the first n bytes for masked display ("gho_AbCd…"). It returns "" when
// the secret is shorter than 2n bytes, so that a short secret is never mostly revealed.
func (s Secret) Prefix(n int) string {
	b := s.bytes()
	if n <= 0 || len(b) < 2*n {
		return ""
	}
	return string(b[:n])
}

// Wipe zeroes the bytes (which every copy shares) and empties this Secret.
func (s *Secret) Wipe() {
	clear(s.bytes())
	*s = Secret{}
}

// String implements fmt.Stringer.
func (Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return Redacted }

// Format implements fmt.Formatter for every verb (%v %+v %#v %s %q %x %X %d ...).
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, Redacted) }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON implements json.Marshaler: always the string "[REDACTED]".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler: always "[REDACTED]".
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// UnmarshalJSON accepts a JSON string (or null, which leaves the Secret empty).
func (s *Secret) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*s = Secret{}
		return nil
	}
	var v string
	if err := json.Unmarshal(data, &v); err != nil {
		// The decoder's error can quote the input; report only its shape.
		return errors.New("vault: a secret must be a JSON string") // the public name is vault.Secret
	}
	*s = New(v)
	return nil
}

// UnmarshalText implements encoding.TextUnmarshaler (copies text).
func (s *Secret) UnmarshalText(text []byte) error {
	*s = FromBytes(append([]byte(nil), text...))
	return nil
}

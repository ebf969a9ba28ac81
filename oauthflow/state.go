package oauthflow

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// The state parameter (RFC 6749 section 10.12, RFC 9700 section 4.7) and the browser
// binding of a connect flow.
//
// A state authenticates itself, so that a callback with a forged or unknown state is
// refused before anything is looked up:
//
//	state = base64url(v ‖ n ‖ kid ‖ random ‖ tag)            (no padding, ≤ MaxStateLen)
//	tag   = HMAC-SHA256(key, stateLabel ‖ v ‖ n ‖ kid ‖ random)
//
// v is stateVersion, n the length of kid, kid the id of the state key (1–64 bytes of
// [A-Za-z0-9_-]), random 256 bits from crypto/rand and key the state key kid names. The
// caller picks the key by the kid (StateKeyID) and by nothing else, and verifies the tag
// in constant time (VerifyState). Only a state whose tag holds is looked up, by its
// SHA-256 (HashState): the store keeps only that hash, so a database dump cannot complete
// anybody's flow, and the store, not the tag, makes a state single-use.
//
// The browser binding ties the flow to the browser that started it: that browser gets a
// cookie with a random nonce, and the session stores BindingMAC(key, session id, nonce).
// The callback recomputes the MAC from the cookie it receives and compares it with
// hmac.Equal (VerifyBinding). A state replayed from another browser (no cookie, or
// another browser's cookie) fails, even though the state itself is right.

// StateBytes is the entropy of a state and of a browser nonce: 256 bits.
const StateBytes = 32

// MaxStateKeyIDLen bounds the key id a state carries.
const MaxStateKeyIDLen = 64

// MaxStateLen is the length of the longest state NewState makes (a 64-byte key id).
const MaxStateLen = (maxStateRaw*8 + 5) / 6

const (
	stateVersion byte = 1
	maxStateRaw       = 2 + MaxStateKeyIDLen + StateBytes + sha256.Size
	minStateRaw       = 2 + 1 + StateBytes + sha256.Size
	// stateLabel separates the state's MAC from every other use of the key (the browser
	// binding's label differs from it within their common length).
	stateLabel = "authpipe-proxy connect-flow state v1"
)

// ErrInvalidState reports a state or nonce that does not have the shape this package
// makes. It never carries the value.
var ErrInvalidState = errors.New("oauthflow: malformed state")

// NewState returns a fresh state MAC'd with key, whose id kid it carries, and its
// SHA-256 hash.
func NewState(kid string, key []byte) (state string, hash []byte, err error) {
	return newState(rand.Reader, kid, key)
}

func newState(r io.Reader, kid string, key []byte) (string, []byte, error) {
	if !validKeyID(kid) {
		return "", nil, errors.New("oauthflow: a state key id is 1–64 characters of [A-Za-z0-9_-]")
	}
	if len(key) == 0 {
		return "", nil, errors.New("oauthflow: no state key")
	}
	raw := make([]byte, 2+len(kid)+StateBytes, 2+len(kid)+StateBytes+sha256.Size)
	raw[0], raw[1] = stateVersion, byte(len(kid))
	copy(raw[2:], kid)
	if _, err := io.ReadFull(r, raw[2+len(kid):]); err != nil {
		return "", nil, fmt.Errorf("oauthflow: reading randomness: %w", err)
	}
	raw = append(raw, stateTag(key, raw)...)
	state := base64.RawURLEncoding.EncodeToString(raw)
	return state, HashState(state), nil
}

// stateTag is HMAC-SHA256(key, stateLabel ‖ body).
func stateTag(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(stateLabel))
	m.Write(body)
	return m.Sum(nil)
}

// parseState splits a state into its MAC'd body (version to random) and its tag, and
// returns the key id. Only the exact shape NewState makes parses: strict base64url
// without padding, the current version, a well-formed key id, the exact length.
func parseState(s string) (kid string, body, tag []byte, err error) {
	if len(s) < (minStateRaw*8+5)/6 || len(s) > MaxStateLen {
		return "", nil, nil, ErrInvalidState
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(raw) < 2 || raw[0] != stateVersion {
		return "", nil, nil, ErrInvalidState
	}
	n := int(raw[1])
	if n == 0 || n > MaxStateKeyIDLen || len(raw) != 2+n+StateBytes+sha256.Size || !validKeyID(string(raw[2:2+n])) {
		return "", nil, nil, ErrInvalidState
	}
	return string(raw[2 : 2+n]), raw[:2+n+StateBytes], raw[2+n+StateBytes:], nil
}

// CheckStateFormat reports whether s has the exact shape of a state NewState makes. It is
// a cheap filter; it says nothing about whether the state is authentic or known.
func CheckStateFormat(s string) error {
	_, _, _, err := parseState(s)
	return err
}

// StateKeyID returns the id of the key a well-formed state names (ErrInvalidState
// otherwise). The key id is not authenticated until VerifyState holds under that key.
func StateKeyID(s string) (string, error) {
	kid, _, _, err := parseState(s)
	return kid, err
}

// VerifyState reports, comparing in constant time, whether s is a well-formed state
// MAC'd with key. An empty key never verifies.
func VerifyState(key []byte, s string) bool {
	_, body, tag, err := parseState(s)
	if err != nil || len(key) == 0 {
		return false
	}
	return hmac.Equal(stateTag(key, body), tag)
}

// IsLegacyState reports whether s has the shape of a state made before states carried a
// key id and a MAC: 43 base64url characters (256 bits), checkable only by looking it up.
func IsLegacyState(s string) bool { return CheckNonceFormat(s) == nil }

func validKeyID(kid string) bool {
	if kid == "" || len(kid) > MaxStateKeyIDLen {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// NewBrowserNonce returns a fresh nonce for the flow cookie: 256 bits from crypto/rand,
// base64url without padding (43 characters).
func NewBrowserNonce() (string, error) { return random(rand.Reader) }

func random(r io.Reader) (string, error) {
	b := make([]byte, StateBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("oauthflow: reading randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashState is the SHA-256 of a state: what the store keeps and looks the state up by.
func HashState(state string) []byte {
	h := sha256.Sum256([]byte(state))
	return h[:]
}

// CheckNonceFormat reports whether s has the exact shape of a browser nonce this package
// makes (43 characters of base64url that decode to 32 bytes). It is a cheap filter
// before any use; it says nothing about whether the nonce is bound to anything.
func CheckNonceFormat(s string) error {
	if len(s) != base64.RawURLEncoding.EncodedLen(StateBytes) {
		return ErrInvalidState
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != StateBytes {
		return ErrInvalidState
	}
	return nil
}

// bindingLabel separates this MAC from every other use of the key.
const bindingLabel = "authpipe-proxy connect-flow browser binding v1"

// BindingMAC is HMAC-SHA256(key, label ‖ len(sessionID) ‖ sessionID ‖ nonce): the value a
// session stores to remember the browser that started it.
func BindingMAC(key []byte, sessionID, nonce string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(bindingLabel))
	m.Write([]byte{byte(len(sessionID) >> 8), byte(len(sessionID))})
	m.Write([]byte(sessionID))
	m.Write([]byte(nonce))
	return m.Sum(nil)
}

// VerifyBinding reports, in constant time, whether the nonce from the callback's cookie
// belongs to the browser that started session sessionID. An empty key, nonce or stored
// MAC never verifies.
func VerifyBinding(key []byte, sessionID, nonce string, stored []byte) bool {
	if len(key) == 0 || len(stored) == 0 || CheckNonceFormat(nonce) != nil {
		return false
	}
	return hmac.Equal(BindingMAC(key, sessionID, nonce), stored)
}

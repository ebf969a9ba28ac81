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
// A state is 256 bits from crypto/rand, base64url without padding (43 characters). It is
// sent to the provider and comes back on the callback; the store keeps only its SHA-256
// (HashState), so a database dump cannot complete anybody's flow.
//
// The browser binding ties the flow to the browser that started it: that browser gets a
// cookie with a random nonce, and the session stores BindingMAC(key, session id, nonce).
// The callback recomputes the MAC from the cookie it receives and compares it with
// hmac.Equal (VerifyBinding). A state replayed from another browser (no cookie, or
// another browser's cookie) fails, even though the state itself is right.

// StateBytes is the entropy of a state and of a browser nonce: 256 bits.
const StateBytes = 32

// ErrInvalidState reports a state or nonce that is not 43 base64url characters. It never
// carries the value.
var ErrInvalidState = errors.New("oauthflow: malformed state")

// NewState returns a fresh state from crypto/rand and its SHA-256 hash.
func NewState() (state string, hash []byte, err error) {
	state, err = random(rand.Reader)
	if err != nil {
		return "", nil, err
	}
	return state, HashState(state), nil
}

// NewBrowserNonce returns a fresh nonce for the flow cookie (same format as a state).
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

// CheckStateFormat reports whether s has the exact shape of a state or nonce this package
// makes (43 characters of base64url that decode to 32 bytes). It is a cheap filter before
// any lookup; it says nothing about whether the state is known.
func CheckStateFormat(s string) error {
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
	if len(key) == 0 || len(stored) == 0 || CheckStateFormat(nonce) != nil {
		return false
	}
	return hmac.Equal(BindingMAC(key, sessionID, nonce), stored)
}

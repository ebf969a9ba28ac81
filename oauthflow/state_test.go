package oauthflow

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The test state key and its id (the shape the proxy's key set uses).
var (
	testStateKey = bytes.Repeat([]byte{7}, 32)
	testStateKID = "pk_connect_state_1"
)

func testState(t testing.TB) string {
	t.Helper()
	s, _, err := NewState(testStateKID, testStateKey)
	require.NoError(t, err)
	return s
}

func TestNewState(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		s, h, err := NewState(testStateKID, testStateKey)
		require.NoError(t, err)
		require.Len(t, s, base64.RawURLEncoding.EncodedLen(2+len(testStateKID)+32+32))
		require.LessOrEqual(t, len(s), MaxStateLen)
		require.NoError(t, CheckStateFormat(s))
		kid, err := StateKeyID(s)
		require.NoError(t, err)
		require.Equal(t, testStateKID, kid)
		require.True(t, VerifyState(testStateKey, s))
		want := sha256.Sum256([]byte(s))
		require.Equal(t, want[:], h)
		require.Equal(t, h, HashState(s))
		require.False(t, seen[s], "states never repeat")
		seen[s] = true
	}
	// The longest key id makes the longest state, still URL-safe.
	long := strings.Repeat("k", MaxStateKeyIDLen)
	s, _, err := NewState(long, testStateKey)
	require.NoError(t, err)
	require.Len(t, s, MaxStateLen)
	require.True(t, VerifyState(testStateKey, s))
	require.Equal(t, base64.RawURLEncoding.EncodeToString(mustDecode(t, s)), s, "base64url, no padding")
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	require.NoError(t, err)
	return b
}

func TestNewStateRefuses(t *testing.T) {
	for name, kid := range map[string]string{
		"empty kid":   "",
		"long kid":    strings.Repeat("k", MaxStateKeyIDLen+1),
		"kid with .":  "pk.1",
		"kid with :":  "pk:1",
		"kid with %":  "pk%5f1",
		"non-ascii":   "pk_é",
		"kid with sp": "pk 1",
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := NewState(kid, testStateKey)
			require.Error(t, err)
		})
	}
	_, _, err := NewState(testStateKID, nil)
	require.Error(t, err, "no key, no state")
}

func TestRandomFailsClosed(t *testing.T) {
	_, err := random(bytes.NewReader(make([]byte, 10)))
	require.Error(t, err, "short randomness is an error, never a short nonce")
	_, _, err = newState(bytes.NewReader(make([]byte, 10)), testStateKID, testStateKey)
	require.Error(t, err, "short randomness is an error, never a short state")
}

func TestVerifyStateRefuses(t *testing.T) {
	good := testState(t)
	raw := mustDecode(t, good)
	enc := base64.RawURLEncoding.EncodeToString
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return enc(b)
	}
	n := len(testStateKID)
	other, _, err := NewState("pk_other", testStateKey)
	require.NoError(t, err)
	otherRaw := mustDecode(t, other)
	// The other state's body under this state's tag: a tag moved between states.
	swapped := enc(append(bytes.Clone(otherRaw[:len(otherRaw)-32]), raw[len(raw)-32:]...))
	// The key id rewritten to another well-formed id of the same length: the tag covers it.
	rekid := bytes.Clone(raw)
	copy(rekid[2:], "pk_connect_state_2")

	for name, s := range map[string]string{
		"empty":         "",
		"legacy shape":  enc(raw[:32]),
		"truncated":     good[:len(good)-1],
		"truncated tag": enc(raw[:len(raw)-16]),
		"extended":      good + "A",
		"padding":       good + "=",
		"std base64":    strings.NewReplacer("-", "+", "_", "/").Replace(good) + "+",
		"space":         good[:len(good)-1] + " ",
		"version":       flip(0),
		"kid length":    flip(1),
		"kid":           flip(2),
		"random":        flip(2 + n),
		"tag":           flip(len(raw) - 1),
		"tag moved":     swapped,
		"kid rewritten": enc(rekid),
		"zero kid len":  enc(append([]byte{1, 0}, raw[2+n:]...)),
	} {
		t.Run(name, func(t *testing.T) {
			require.False(t, VerifyState(testStateKey, s))
		})
	}
	require.True(t, VerifyState(testStateKey, good))
	// A 64-byte key id makes 130 bytes, whose last character carries 4 padding bits: with
	// any of them set the characters decode to the same bytes, and strict decoding refuses.
	long, _, err := NewState(strings.Repeat("k", MaxStateKeyIDLen), testStateKey)
	require.NoError(t, err)
	require.True(t, VerifyState(testStateKey, long))
	require.False(t, VerifyState(testStateKey, long[:len(long)-1]+string(nonStrictTail(long[len(long)-1]))), "non-strict tail")
	require.False(t, VerifyState(bytes.Repeat([]byte{8}, 32), good), "another key")
	require.False(t, VerifyState(nil, good), "no key")
}

// nonStrictTail returns a base64url character that decodes to the same bytes as c in the
// last position but with non-zero trailing bits (which strict decoding refuses).
func nonStrictTail(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return alphabet[strings.IndexByte(alphabet, c)|1]
}

func TestCheckFormats(t *testing.T) {
	nonce, err := NewBrowserNonce()
	require.NoError(t, err)
	require.NoError(t, CheckNonceFormat(nonce))
	require.True(t, IsLegacyState(nonce))
	require.Error(t, CheckStateFormat(nonce), "a nonce is not a state")
	state := testState(t)
	require.NoError(t, CheckStateFormat(state))
	require.Error(t, CheckNonceFormat(state), "a state is not a nonce")
	require.False(t, IsLegacyState(state))
	for name, s := range map[string]string{
		"empty":      "",
		"short":      nonce[:42],
		"long":       nonce + "A",
		"padding":    nonce[:42] + "=",
		"std base64": nonce[:42] + "+",
		"space":      nonce[:42] + " ",
		"non-ascii":  nonce[:41] + "é",
	} {
		t.Run(name, func(t *testing.T) {
			require.True(t, errors.Is(CheckNonceFormat(s), ErrInvalidState))
			require.True(t, errors.Is(CheckStateFormat(s), ErrInvalidState))
		})
	}
}

func TestStateLabelsDiffer(t *testing.T) {
	// The state and the browser binding share a key; their MAC inputs start with labels
	// that differ within their common length, so neither MAC can stand in for the other.
	n := min(len(stateLabel), len(bindingLabel))
	require.NotEqual(t, stateLabel[:n], bindingLabel[:n])
}

func TestBinding(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	nonce, err := NewBrowserNonce()
	require.NoError(t, err)
	other, err := NewBrowserNonce()
	require.NoError(t, err)
	mac := BindingMAC(key, "cs_1", nonce)
	require.True(t, VerifyBinding(key, "cs_1", nonce, mac))

	for name, ok := range map[string]bool{
		"other browser":  VerifyBinding(key, "cs_1", other, mac),
		"no cookie":      VerifyBinding(key, "cs_1", "", mac),
		"other session":  VerifyBinding(key, "cs_2", nonce, mac),
		"other key":      VerifyBinding(bytes.Repeat([]byte{8}, 32), "cs_1", nonce, mac),
		"no key":         VerifyBinding(nil, "cs_1", nonce, mac),
		"nothing stored": VerifyBinding(key, "cs_1", nonce, nil),
		"truncated MAC":  VerifyBinding(key, "cs_1", nonce, mac[:16]),
	} {
		t.Run(name, func(t *testing.T) { require.False(t, ok) })
	}
	// The session id is length-prefixed: moving characters between id and nonce changes the MAC.
	require.NotEqual(t, BindingMAC(key, "cs_1"+nonce[:1], nonce[1:]), mac)
}

// FuzzParseState feeds untrusted callback states to the parser and the verifier: they
// never panic, only the canonical encoding of a well-formed state parses, and a tag holds
// under one key only.
func FuzzParseState(f *testing.F) {
	f.Add(testState(f))
	s, _, _ := NewState(strings.Repeat("k", MaxStateKeyIDLen), testStateKey)
	f.Add(s)
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add(base64.RawURLEncoding.EncodeToString(append([]byte{1, 3, 'p', 'k', '_'}, make([]byte, 64)...)))
	f.Fuzz(func(t *testing.T, s string) {
		kid, body, tag, err := parseState(s)
		if err != nil {
			require.False(t, VerifyState(testStateKey, s))
			return
		}
		require.True(t, validKeyID(kid))
		require.LessOrEqual(t, len(s), MaxStateLen)
		require.Len(t, tag, sha256.Size)
		require.Equal(t, s, base64.RawURLEncoding.EncodeToString(append(bytes.Clone(body), tag...)), "only the canonical encoding parses")
		require.False(t, VerifyState(bytes.Repeat([]byte{8}, 32), s), "a tag holds under one key only")
	})
}

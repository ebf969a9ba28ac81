package oauthflow

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNewState(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		s, h, err := NewState()
		require.NoError(t, err)
		require.Len(t, s, 43, "256 bits, base64url without padding")
		require.NoError(t, CheckStateFormat(s))
		want := sha256.Sum256([]byte(s))
		require.Equal(t, want[:], h)
		require.Equal(t, h, HashState(s))
		require.False(t, seen[s], "states never repeat")
		seen[s] = true
	}
}

func TestRandomFailsClosed(t *testing.T) {
	_, err := random(bytes.NewReader(make([]byte, 10)))
	require.Error(t, err, "short randomness is an error, never a short state")
}

func TestCheckStateFormat(t *testing.T) {
	good, _, err := NewState()
	require.NoError(t, err)
	for name, s := range map[string]string{
		"empty":      "",
		"short":      good[:42],
		"long":       good + "A",
		"padding":    good[:42] + "=",
		"std base64": good[:42] + "+",
		"space":      good[:42] + " ",
		"non-ascii":  good[:41] + "é",
		"non-strict": good[:42] + "B", // last character with non-zero trailing bits
	} {
		t.Run(name, func(t *testing.T) {
			if name == "non-strict" && strings.HasSuffix(good, "B") {
				t.Skip("the generated state already ends in B")
			}
			require.True(t, errors.Is(CheckStateFormat(s), ErrInvalidState))
		})
	}
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

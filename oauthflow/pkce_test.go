package oauthflow

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

func TestChallengeRFC7636AppendixB(t *testing.T) {
	// RFC 7636 Appendix B: the verifier from the octets given there, and its S256 challenge.
	octets := []byte{116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173,
		187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121}
	verifier := base64.RawURLEncoding.EncodeToString(octets)
	require.Equal(t, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", verifier)
	require.Equal(t, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Challenge(verifier))
	require.Equal(t, "S256", ChallengeMethod)
}

func TestChallengeMatchesXOAuth2(t *testing.T) {
	for range 20 {
		v, err := NewVerifier()
		require.NoError(t, err)
		require.Equal(t, oauth2.S256ChallengeFromVerifier(v), Challenge(v))
	}
}

func TestNewVerifier(t *testing.T) {
	seen := make(map[string]bool)
	for range 200 {
		v, err := NewVerifier()
		require.NoError(t, err)
		require.Len(t, v, 43)
		require.NoError(t, ValidateVerifier(v))
		raw, err := base64.RawURLEncoding.DecodeString(v)
		require.NoError(t, err)
		require.Len(t, raw, 32)
		require.False(t, seen[v], "verifier repeated")
		seen[v] = true
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestNewVerifierRandomnessFailure(t *testing.T) {
	v, err := newVerifier(failingReader{})
	require.Error(t, err)
	require.Empty(t, v)
	_, err = newVerifier(strings.NewReader("short"))
	require.Error(t, err)
}

func TestValidateVerifier(t *testing.T) {
	tests := []struct {
		name string
		v    string
		ok   bool
	}{
		{"rfc example", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", true},
		{"minimum 43", strings.Repeat("a", 43), true},
		{"maximum 128", strings.Repeat("~", 128), true},
		{"all unreserved", "ABCXYZabcxyz0189-._~" + strings.Repeat("q", 23), true},
		{"too short", strings.Repeat("a", 42), false},
		{"too long", strings.Repeat("a", 129), false},
		{"empty", "", false},
		{"plus", strings.Repeat("a", 42) + "+", false},
		{"slash", strings.Repeat("a", 42) + "/", false},
		{"padding", strings.Repeat("a", 42) + "=", false},
		{"space", strings.Repeat("a", 42) + " ", false},
		{"non-ascii", strings.Repeat("a", 41) + "é", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateVerifier(tc.v)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidVerifier)
			if tc.v != "" {
				require.NotContains(t, err.Error(), tc.v)
			}
		})
	}
}

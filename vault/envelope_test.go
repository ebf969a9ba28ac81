package vault_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/vault"
)

func newAEAD(t testing.TB) cipher.AEAD {
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(t, err)
	return aead
}

var bindA = vault.Binding{WorkspaceID: "ws_1", OwnerID: "conn_a", Field: "access_token"}

func TestEnvelopeLayout(t *testing.T) {
	aead := newAEAD(t)
	env, err := vault.SealEnvelope(aead, "dek_x", vault.PurposeCredentials, bindA, []byte("tok"))
	require.NoError(t, err)
	require.Len(t, env, 1+1+5+12+3+16)
	require.Equal(t, vault.EnvelopeV1, env[0])
	require.Equal(t, byte(5), env[1])
	require.Equal(t, "dek_x", string(env[2:7]))
	require.NotContains(t, string(env), "tok")

	e, err := vault.ParseEnvelope(env)
	require.NoError(t, err)
	require.Equal(t, "dek_x", e.DEKID)
	require.Equal(t, env[7:19], e.Nonce[:])
	require.Equal(t, env[19:], e.Ciphertext)
	require.Equal(t, env, e.Marshal())

	pt, err := vault.OpenEnvelope(aead, vault.PurposeCredentials, bindA, env)
	require.NoError(t, err)
	require.Equal(t, "tok", string(pt))

	empty, err := vault.SealEnvelope(aead, "dek_x", vault.PurposeCredentials, bindA, nil)
	require.NoError(t, err)
	pt, err = vault.OpenEnvelope(aead, vault.PurposeCredentials, bindA, empty)
	require.NoError(t, err)
	require.Empty(t, pt)
}

// The associated data binds each part of the binding and the purpose, independently of
// the keyring's own DEK checks (same AEAD throughout).
func TestEnvelopeBindingIsAuthenticated(t *testing.T) {
	aead := newAEAD(t)
	env, err := vault.SealEnvelope(aead, "dek_x", vault.PurposeCredentials, bindA, []byte("tok"))
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		b vault.Binding
		p vault.Purpose
	}{
		"other workspace": {vault.Binding{WorkspaceID: "ws_2", OwnerID: "conn_a", Field: "access_token"}, vault.PurposeCredentials},
		"other owner":     {vault.Binding{WorkspaceID: "ws_1", OwnerID: "conn_b", Field: "access_token"}, vault.PurposeCredentials},
		"other field":     {vault.Binding{WorkspaceID: "ws_1", OwnerID: "conn_a", Field: "refresh_token"}, vault.PurposeCredentials},
		"other purpose":   {bindA, vault.PurposeClientSecrets},
		// length prefixes: moving bytes between adjacent parts must not verify
		"shifted boundary": {vault.Binding{WorkspaceID: "ws_1c", OwnerID: "onn_a", Field: "access_token"}, vault.PurposeCredentials},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := vault.OpenEnvelope(aead, tc.p, tc.b, env)
			require.ErrorIs(t, err, vault.ErrDecrypt)
		})
	}
	_, err = vault.OpenEnvelope(newAEAD(t), vault.PurposeCredentials, bindA, env)
	require.ErrorIs(t, err, vault.ErrDecrypt, "another key")
}

func TestEnvelopeRefusals(t *testing.T) {
	aead := newAEAD(t)
	for name, id := range map[string]string{
		"empty id": "", "long id": strings.Repeat("a", 65), "space": "dek x", "control": "dek\x00", "non-ascii": "dék",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := vault.SealEnvelope(aead, id, vault.PurposeCredentials, bindA, []byte("x"))
			require.Error(t, err)
		})
	}
	for _, b := range []vault.Binding{{OwnerID: "o", Field: "f"}, {WorkspaceID: "w", Field: "f"}, {WorkspaceID: "w", OwnerID: "o"}} {
		_, err := vault.SealEnvelope(aead, "dek_x", vault.PurposeCredentials, b, []byte("x"))
		require.ErrorIs(t, err, vault.ErrInvalidBinding)
	}
	_, err := vault.SealEnvelope(aead, strings.Repeat("a", 64), vault.PurposeCredentials, bindA, []byte("x"))
	require.NoError(t, err, "64 bytes is the maximum id length")
}

func validEnvelope(t testing.TB) []byte {
	env, err := vault.SealEnvelope(newAEAD(t), "dek_abcdefghijklmnopqrstuvwxyz", vault.PurposeCredentials, bindA, []byte("gho_token"))
	require.NoError(t, err)
	return env
}

func TestParseEnvelopeStrict(t *testing.T) {
	good := validEnvelope(t)
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"empty":            nil,
		"version 0":        mut(func(b []byte) []byte { b[0] = 0; return b }),
		"version 2":        mut(func(b []byte) []byte { b[0] = 2; return b }),
		"id length 0":      mut(func(b []byte) []byte { b[1] = 0; return b }),
		"id length 65":     append([]byte{1, 65}, bytes.Repeat([]byte("a"), 65+12+16)...),
		"id length 255":    mut(func(b []byte) []byte { b[1] = 255; return b }),
		"id not printable": mut(func(b []byte) []byte { b[3] = 0x7f; return b }),
		"id with space":    mut(func(b []byte) []byte { b[3] = ' '; return b }),
		"no tag":           good[:len(good)-len("gho_token")-1],
		"header only":      good[:2+29+12],
		"truncated id":     good[:10],
	} {
		t.Run(name, func(t *testing.T) {
			_, err := vault.ParseEnvelope(b)
			require.ErrorIs(t, err, vault.ErrMalformedEnvelope)
		})
	}
	_, err := vault.ParseEnvelope(good[:len(good)-len("gho_token")])
	require.NoError(t, err, "an empty plaintext (tag only) parses")
}

// FuzzParseEnvelope: parsing untrusted bytes never panics, errors are typed, and a parsed
// envelope re-encodes to exactly its input. Seeds: testdata/fuzz/FuzzParseEnvelope.
func FuzzParseEnvelope(f *testing.F) {
	f.Add(validEnvelope(f))
	f.Add([]byte{1, 1, 'k'})
	f.Add(append([]byte{1, 64}, bytes.Repeat([]byte("k"), 64+12+16)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := vault.ParseEnvelope(b)
		if err != nil {
			require.ErrorIs(t, err, vault.ErrMalformedEnvelope)
			return
		}
		require.Equal(t, vault.EnvelopeV1, e.Version)
		require.GreaterOrEqual(t, len(e.DEKID), 1)
		require.LessOrEqual(t, len(e.DEKID), vault.MaxDEKIDLen)
		require.GreaterOrEqual(t, len(e.Ciphertext), vault.TagSize)
		require.Equal(t, b, e.Marshal())
	})
}

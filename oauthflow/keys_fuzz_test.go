package oauthflow

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/vault"
)

// Both key parsers refuse more than MaxKeyLen (16 KiB) before parsing anything, with
// their typed errors: a valid key padded past the cap, and a JSON client key whose
// private_key is padded past it.
func TestKeyParsersCapSize(t *testing.T) {
	pad := strings.Repeat(" ", MaxKeyLen)
	_, err := gitHubAppKey(vault.NewSecret(pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(testRSAKey)) + pad))
	require.ErrorIs(t, err, ErrInvalidAppKey)
	_, err = gitHubAppKey(vault.NewSecret(pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(testRSAKey))))
	require.NoError(t, err)
	_, err = gitHubAppKey(vault.Secret{})
	require.ErrorIs(t, err, ErrInvalidAppKey)

	js := serviceAccountJSON(t, "c", "kid", testRSAKey)
	_, err = parseClientKey([]byte(js))
	require.NoError(t, err)
	_, err = parseClientKey([]byte(js + pad))
	require.ErrorIs(t, err, ErrInvalidKey)
	_, err = parseClientKey(nil)
	require.ErrorIs(t, err, ErrInvalidKey)
}

func FuzzGitHubAppKey(f *testing.F) {
	f.Add([]byte(pemOf(f, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(testRSAKey))))
	f.Add([]byte(pkcs8(f, testRSAKey)))
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(f, err)
	f.Add([]byte(pkcs8(f, ec))) // not RSA
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte("not a key"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		k, err := gitHubAppKey(vault.SecretFromBytes(raw))
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidAppKey)
			require.ErrorIs(t, err, ErrInvalidKey)
			return
		}
		require.LessOrEqual(t, len(raw), MaxKeyLen)
		require.GreaterOrEqual(t, k.N.BitLen(), 2048)
	})
}

func FuzzParseClientKey(f *testing.F) {
	f.Add([]byte(serviceAccountJSON(f, "c", "kid", testRSAKey)))
	f.Add([]byte(pkcs8(f, testRSAKey)))
	f.Add([]byte(`{"private_key":"x","private_key_id":"\u0000"}`))
	f.Add([]byte(`  {"private_key":1}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		k, err := parseClientKey(raw)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidKey)
			return
		}
		require.LessOrEqual(t, len(raw), MaxKeyLen)
		require.Contains(t, []string{"RS256", "ES256"}, k.Algorithm())
	})
}

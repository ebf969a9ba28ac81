package oauthflow

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
	"github.com/authpipe/authpipe-proxy/vault"
)

// selfSigned makes a client certificate for key (self-signed, or signed by parent/
// parentKey when given) valid from nb to na, and returns its PEM.
func selfSigned(t testing.TB, key crypto.Signer, cn string, nb, na time.Time, eku ...x509.ExtKeyUsage) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn, Organization: []string{"Acme"}},
		NotBefore: nb, NotAfter: na, ExtKeyUsage: eku, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(t testing.TB, typ string, key any) []byte {
	t.Helper()
	var der []byte
	var err error
	switch typ {
	case "RSA PRIVATE KEY":
		der = x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))
	case "EC PRIVATE KEY":
		der, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	default:
		der, err = x509.MarshalPKCS8PrivateKey(key)
	}
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParseClientCertificate(t *testing.T) {
	now := time.Now()
	nb, na := now.Add(-time.Hour), now.Add(24*time.Hour)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ec2, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	weakEC, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	ca := tlstest.NewCA(t, "Test CA")
	leaf := ca.Client(t, "adp-client")
	other := ca.Client(t, "other")
	ecCert := selfSigned(t, ec, "ec", nb, na)

	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	ok := []struct {
		name   string
		bundle []byte
		cn     string
	}{
		{"ECDSA P-256 PKCS #8, chain with the CA", cat(leaf.CertPEM, leaf.KeyPEM), "adp-client"},
		{"key first", cat(leaf.KeyPEM, leaf.CertPEM), "adp-client"},
		{"SEC 1 EC key with parameters", cat(ecCert, []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), pemKey(t, "EC PRIVATE KEY", ec)), "ec"},
		{"P-384", cat(selfSigned(t, ec2, "p384", nb, na, x509.ExtKeyUsageClientAuth), pemKey(t, "PRIVATE KEY", ec2)), "p384"},
		{"RSA PKCS #1", cat(selfSigned(t, rsaKey, "rsa", nb, na), pemKey(t, "RSA PRIVATE KEY", rsaKey)), "rsa"},
		{"RSA PKCS #8", cat(selfSigned(t, rsaKey, "rsa8", nb, na), pemKey(t, "PRIVATE KEY", rsaKey)), "rsa8"},
		{"Ed25519", cat(selfSigned(t, edKey, "ed", nb, na), pemKey(t, "PRIVATE KEY", edKey)), "ed"},
		{"text around the blocks", cat([]byte("subject=CN=adp-client\n"), leaf.CertPEM, []byte("\n# key\n"), leaf.KeyPEM), "adp-client"},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseClientCertificate(vault.SecretFromBytes(tc.bundle))
			require.NoError(t, err)
			require.NoError(t, c.ValidAt(now))
			require.Contains(t, c.Info().Subject, "CN="+tc.cn)
			require.Len(t, c.Info().SHA256, 64)
			require.NotNil(t, c.TLS().PrivateKey)
		})
	}

	var big []byte
	for len(big) <= MaxClientCertBundle {
		big = append(big, leaf.CertPEM...)
	}
	encrypted := []byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n")
	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	bad := []struct {
		name, bundle, why string
	}{
		{"empty", "", "no PEM CERTIFICATE"},
		{"not PEM", "SENTINEL-not-pem", "no PEM CERTIFICATE"},
		{"certificate only", string(leaf.CertPEM), "exactly one PEM private key"},
		{"key only", string(leaf.KeyPEM), "no PEM CERTIFICATE"},
		{"two keys", string(cat(leaf.CertPEM, leaf.KeyPEM, other.KeyPEM)), "exactly one"},
		{"another certificate's key", string(cat(leaf.CertPEM, other.KeyPEM)), "does not match"},
		{"chain out of order", string(cat(ca.PEM, leaf.CertPEM, leaf.KeyPEM)), "not issued by"},
		{"intermediate that did not issue it", string(cat(leaf.CertPEM[:bytes.Index(leaf.CertPEM, ca.PEM)], other.CertPEM, leaf.KeyPEM)), "not issued by"},
		{"encrypted PKCS #1", string(cat(leaf.CertPEM, encrypted)), "encrypted"},
		{"encrypted PKCS #8", string(cat(leaf.CertPEM, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"))), "encrypted"},
		{"garbage key", string(cat(leaf.CertPEM, []byte("-----BEGIN PRIVATE KEY-----\nU0VOVElORUw=\n-----END PRIVATE KEY-----\n"))), "does not parse"},
		{"garbage certificate", "-----BEGIN CERTIFICATE-----\nU0VOVElORUw=\n-----END CERTIFICATE-----\n" + string(leaf.KeyPEM), "does not parse"},
		{"other block", string(cat(leaf.CertPEM, leaf.KeyPEM, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))), "unexpected PEM block"},
		{"RSA 1024", string(cat(leaf.CertPEM, pemKey(t, "RSA PRIVATE KEY", smallRSA))), "at least 2048"},
		{"P-224", string(cat(leaf.CertPEM, pemKey(t, "EC PRIVATE KEY", weakEC))), "P-256"},
		{"server-only certificate", string(cat(selfSigned(t, ec, "srv", nb, na, x509.ExtKeyUsageServerAuth), pemKey(t, "PRIVATE KEY", ec))), "client authentication"},
		{"too large", string(big), "larger than"},
	}
	keyText := string(leaf.KeyPEM)
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseClientCertificate(vault.NewSecret(tc.bundle))
			require.Error(t, err)
			require.ErrorIs(t, err, ErrClientCertificate)
			require.Contains(t, err.Error(), tc.why)
			require.NotContains(t, err.Error(), "SENTINEL")
			require.NotContains(t, err.Error(), "BEGIN")
			require.NotContains(t, err.Error(), keyText[40:80])
		})
	}

	t.Run("validity", func(t *testing.T) {
		c, err := ParseClientCertificate(vault.SecretFromBytes(cat(selfSigned(t, ec, "v", nb, na), pemKey(t, "PRIVATE KEY", ec))))
		require.NoError(t, err)
		require.NoError(t, c.ValidAt(now))
		err = c.ValidAt(na.Add(time.Second))
		require.ErrorIs(t, err, ErrClientCertificate)
		require.Contains(t, err.Error(), "expired at "+na.UTC().Format(time.RFC3339))
		require.Contains(t, c.ValidAt(nb.Add(-time.Second)).Error(), "not valid before")
		require.Equal(t, na.UTC().Truncate(time.Second), c.Info().NotAfter)
	})
}

// TestClientCertificateRedacts: whatever prints, logs or marshals a parsed certificate
// shows its description, never its key.
func TestClientCertificateRedacts(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	c, err := ParseClientCertificate(vault.SecretFromBytes(append(selfSigned(t, ec, "redact", time.Now().Add(-time.Hour), time.Now().Add(time.Hour)),
		pemKey(t, "PRIVATE KEY", ec)...)))
	require.NoError(t, err)
	d := ec.D.String()
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "cert", c)
	js, err := json.Marshal(map[string]any{"c": c})
	require.NoError(t, err)
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", []any{c}),
		fmt.Sprintf("%+v", struct{ C ClientCertificate }{c}), logs.String(), string(js)} {
		require.NotContains(t, out, d)
		require.Contains(t, out, "redact")
	}
}

// FuzzParseClientCertificate: the parser never panics, never accepts a bundle whose key
// does not match its leaf, and never quotes the input in an error.
func FuzzParseClientCertificate(f *testing.F) {
	ca := tlstest.NewCA(f, "Fuzz CA")
	leaf := ca.Client(f, "fuzz")
	f.Add(append(append([]byte{}, leaf.CertPEM...), leaf.KeyPEM...))
	f.Add(leaf.CertPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"))
	f.Add([]byte("SENTINEL"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := ParseClientCertificate(vault.SecretFromBytes(bytes.Clone(in)))
		if err != nil {
			require.True(t, errors.Is(err, ErrClientCertificate), "%v", err)
			require.NotContains(t, err.Error(), "-----")
			return
		}
		tc := c.TLS()
		require.NotEmpty(t, tc.Certificate)
		pub, ok := tc.PrivateKey.(crypto.Signer)
		require.True(t, ok)
		require.NoError(t, matchKey(tc.Leaf, pub))
		require.True(t, strings.HasPrefix(fmt.Sprint(c), "client certificate"))
	})
}

package oauthflow

// The client certificate of tls_client_auth (RFC 8705 section 2.1, mutual TLS): a PEM
// bundle, sealed like a client secret (the provider's client secret, or the client_secret
// of a connection's own client), that holds the client's certificate chain and its
// private key. This file is the one parser of that bundle; the provider API (providers)
// checks a bundle with it before sealing one, and tokenCall parses the opened bundle for
// each call (clientcert_call.go).

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/authpipe/authpipe-proxy/vault"
)

// Limits of a client certificate bundle.
const (
	MaxClientCertBundle = 64 << 10 // bytes of PEM
	maxChainCerts       = 8        // the leaf and its intermediates
	minRSABits          = 2048
)

// ErrClientCertificate: a tls_client_auth bundle is not a usable client certificate and
// key (malformed, mismatched, of an unsupported key type, expired or not yet valid). Its
// text says why, never what the bundle holds.
var ErrClientCertificate = errors.New("oauthflow: client certificate")

// ClientCertificate is a parsed tls_client_auth credential: a certificate chain (leaf
// first) and the leaf's private key. Printing, logging or marshalling it shows only its
// CertificateInfo, never the key.
type ClientCertificate struct {
	cert tls.Certificate
	info CertificateInfo
}

// CertificateInfo is what may be shown of a client certificate: its names, validity and
// fingerprint, nothing secret.
type CertificateInfo struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// SHA256 is the hex SHA-256 of the leaf's DER (what `openssl x509 -fingerprint
	// -sha256` prints, without the colons).
	SHA256 string `json:"sha256"`
}

func certErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrClientCertificate, fmt.Sprintf(format, args...))
}

// ParseClientCertificate parses a PEM bundle: one or more CERTIFICATE blocks, the leaf
// first and then the intermediates that issued it (each signed by the next), and exactly
// one unencrypted private key (PKCS #8 "PRIVATE KEY", PKCS #1 "RSA PRIVATE KEY" or SEC 1
// "EC PRIVATE KEY"; an "EC PARAMETERS" block is ignored) that matches the leaf. The key is
// RSA of at least 2048 bits, ECDSA on P-256, P-384 or P-521, or Ed25519; a leaf that
// lists extended key usages must allow client authentication. Validity is checked
// separately (ValidAt). Errors wrap ErrClientCertificate and never quote the bundle.
func ParseClientCertificate(bundle vault.Secret) (ClientCertificate, error) {
	if bundle.Len() > MaxClientCertBundle {
		return ClientCertificate{}, certErr("bundle larger than %d bytes", MaxClientCertBundle)
	}
	var (
		chain [][]byte
		keys  int
		key   crypto.Signer
	)
	rest := bundle.Bytes()
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if len(b.Headers) > 0 {
			return ClientCertificate{}, certErr("encrypted or annotated PEM blocks are not supported")
		}
		switch b.Type {
		case "CERTIFICATE":
			if len(chain) == maxChainCerts {
				return ClientCertificate{}, certErr("more than %d certificates", maxChainCerts)
			}
			chain = append(chain, b.Bytes)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			keys++
			k, err := parsePrivateKey(b.Type, b.Bytes)
			if err != nil {
				return ClientCertificate{}, err
			}
			key = k
		case "EC PARAMETERS":
		case "ENCRYPTED PRIVATE KEY":
			return ClientCertificate{}, certErr("the private key is encrypted: give it unencrypted (it is sealed here)")
		default:
			return ClientCertificate{}, certErr("unexpected PEM block type")
		}
	}
	if len(chain) == 0 {
		return ClientCertificate{}, certErr("no PEM CERTIFICATE block")
	}
	if keys != 1 {
		return ClientCertificate{}, certErr("want exactly one PEM private key block, found %d", keys)
	}
	certs := make([]*x509.Certificate, len(chain))
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return ClientCertificate{}, certErr("certificate %d does not parse", i+1)
		}
		certs[i] = c
	}
	leaf := certs[0]
	for i := 1; i < len(certs); i++ {
		if certs[i-1].CheckSignatureFrom(certs[i]) != nil {
			return ClientCertificate{}, certErr("certificate %d is not issued by certificate %d (leaf first, then its issuers)", i, i+1)
		}
	}
	if err := matchKey(leaf, key); err != nil {
		return ClientCertificate{}, err
	}
	if len(leaf.ExtKeyUsage) > 0 && !slices.ContainsFunc(leaf.ExtKeyUsage, func(u x509.ExtKeyUsage) bool {
		return u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny
	}) {
		return ClientCertificate{}, certErr("the certificate's extended key usage does not allow client authentication")
	}
	sum := sha256.Sum256(leaf.Raw)
	return ClientCertificate{
		cert: tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf},
		info: CertificateInfo{Subject: capString(leaf.Subject.String()), Issuer: capString(leaf.Issuer.String()),
			NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC(), SHA256: hex.EncodeToString(sum[:])},
	}, nil
}

func parsePrivateKey(typ string, der []byte) (crypto.Signer, error) {
	var (
		k   any
		err error
	)
	switch typ {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(der)
	default:
		k, err = x509.ParsePKCS8PrivateKey(der)
	}
	if err != nil {
		return nil, certErr("the private key does not parse")
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return nil, certErr("RSA keys need at least %d bits", minRSABits)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return k, nil
		}
		return nil, certErr("ECDSA keys must be on P-256, P-384 or P-521")
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, certErr("the private key must be RSA, ECDSA or Ed25519")
}

// matchKey reports whether key is the private half of leaf's public key.
func matchKey(leaf *x509.Certificate, key crypto.Signer) error {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return certErr("the private key does not match the first certificate")
	}
	return nil
}

func capString(s string) string {
	const limit = 512
	if len(s) > limit {
		return s[:limit]
	}
	return s
}

// ValidAt checks that the leaf is valid at now (NotBefore ≤ now ≤ NotAfter); the error
// names the bound that failed.
func (c ClientCertificate) ValidAt(now time.Time) error {
	switch {
	case now.After(c.info.NotAfter):
		return certErr("the certificate expired at %s", c.info.NotAfter.Format(time.RFC3339))
	case now.Before(c.info.NotBefore):
		return certErr("the certificate is not valid before %s", c.info.NotBefore.Format(time.RFC3339))
	}
	return nil
}

// Info describes the certificate (nothing secret).
func (c ClientCertificate) Info() CertificateInfo { return c.info }

// TLS is the certificate chain and key for a TLS client (outbound.WithClientCertificate).
func (c ClientCertificate) TLS() tls.Certificate { return c.cert }

// String, GoString, Format, LogValue and MarshalJSON show the certificate's description
// only: a tls.Certificate printed with %v would print its private key.
func (c ClientCertificate) String() string {
	return fmt.Sprintf("client certificate %q (expires %s, sha256 %s)", c.info.Subject,
		c.info.NotAfter.Format(time.RFC3339), c.info.SHA256)
}

// GoString: see String.
func (c ClientCertificate) GoString() string { return c.String() }

// Format: see String.
func (c ClientCertificate) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue: see String.
func (c ClientCertificate) LogValue() slog.Value {
	return slog.GroupValue(slog.String("subject", c.info.Subject), slog.Time("not_after", c.info.NotAfter),
		slog.String("sha256", c.info.SHA256))
}

// MarshalJSON: see String.
func (c ClientCertificate) MarshalJSON() ([]byte, error) { return json.Marshal(c.info) }

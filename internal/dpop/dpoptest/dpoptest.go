// Package dpoptest signs DPoP proofs for tests: a client key pair, its thumbprint, and
// proofs with chosen claims and headers, including ones a JOSE library would refuse to
// make (alg none, HS256).
package dpoptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
)

// Key is a client's DPoP key pair.
type Key struct {
	Priv crypto.Signer
	Alg  jose.SignatureAlgorithm
	JKT  string // RFC 7638 thumbprint of the public key, base64url
}

// NewKey generates a key pair for alg (ES256, EdDSA, RS256 or PS256).
func NewKey(t testing.TB, alg jose.SignatureAlgorithm) Key {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case jose.RS256, jose.PS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	require.NoError(t, err)
	jwk := jose.JSONWebKey{Key: priv.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	require.NoError(t, err)
	return Key{Priv: priv, Alg: alg, JKT: base64.RawURLEncoding.EncodeToString(tp)}
}

// ATH is the ath claim for an API key.
func ATH(key string) string {
	s := sha256.Sum256([]byte(key))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// Proof signs claims with k, its public key in the jwk header; hdr adds or overrides
// protected header fields.
func (k Key) Proof(t testing.TB, claims map[string]any, hdr map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	for h, v := range hdr {
		opts = opts.WithHeader(h, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: k.Priv}, opts)
	require.NoError(t, err)
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	jws, err := signer.Sign(payload)
	require.NoError(t, err)
	out, err := jws.CompactSerialize()
	require.NoError(t, err)
	return out
}

// Claims are the claims of a proof of a request (method, htu) made with key at iat, with
// a fresh jti.
func Claims(method, htu, key string, iat time.Time) map[string]any {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return map[string]any{"jti": base64.RawURLEncoding.EncodeToString(b), "htm": method, "htu": htu,
		"iat": iat.Unix(), "ath": ATH(key)}
}

// Unsigned builds a JWS by hand (alg none, HS256) that a library would refuse to make.
func Unsigned(t testing.TB, header, claims map[string]any, sig []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	require.NoError(t, err)
	c, err := json.Marshal(claims)
	require.NoError(t, err)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "." + enc(sig)
}

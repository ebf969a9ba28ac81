package authpipe

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"
)

// DPoPKey signs DPoP proofs (RFC 9449) with an ES256 (P-256) key. Bind an API key to it by
// creating the key with "dpop_jkt": Thumbprint(); the proxy then accepts that API key only
// with a fresh proof from this key, so a leaked key alone is useless.
type DPoPKey struct {
	priv *ecdsa.PrivateKey
	jwk  map[string]string
}

// NewDPoPKey makes a fresh P-256 key.
func NewDPoPKey() (*DPoPKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return DPoPKeyFrom(k)
}

// DPoPKeyFrom uses an existing P-256 key (kept, for example, in a file or a KMS-backed
// signer's export).
func DPoPKeyFrom(k *ecdsa.PrivateKey) (*DPoPKey, error) {
	if k == nil || k.Curve != elliptic.P256() {
		return nil, errors.New("authpipe: a DPoP key must be ECDSA P-256")
	}
	pub, err := k.PublicKey.ECDH()
	if err != nil {
		return nil, fmt.Errorf("authpipe: DPoP key: %w", err)
	}
	b := pub.Bytes() // 0x04 || X || Y
	enc := base64.RawURLEncoding.EncodeToString
	return &DPoPKey{priv: k, jwk: map[string]string{
		"kty": "EC", "crv": "P-256", "x": enc(b[1:33]), "y": enc(b[33:65]),
	}}, nil
}

// Thumbprint is the key's RFC 7638 JWK SHA-256 thumbprint, base64url: the dpop_jkt an API
// key is bound to.
func (k *DPoPKey) Thumbprint() string {
	// RFC 7638: the required members, lexicographic order, no whitespace.
	canon := `{"crv":"P-256","kty":"EC","x":"` + k.jwk["x"] + `","y":"` + k.jwk["y"] + `"}`
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Proof signs a proof for one request: htm, htu (the URL without query and fragment), iat,
// a fresh jti, ath (the hash of the API key it accompanies) and the server's nonce when it
// asked for one.
func (k *DPoPKey) Proof(method string, u *url.URL, apiKey, nonce string, now time.Time) (string, error) {
	htu := *u
	htu.RawQuery, htu.Fragment, htu.ForceQuery = "", "", false
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	ath := sha256.Sum256([]byte(apiKey))
	enc := base64.RawURLEncoding.EncodeToString
	claims := map[string]any{
		"jti": enc(jti[:]), "htm": method, "htu": htu.String(), "iat": now.Unix(), "ath": enc(ath[:]),
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	header, err := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := enc(header) + "." + enc(payload)
	digest := sha256.Sum256([]byte(input))
	der, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		return "", err
	}
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		return "", err
	}
	sig := make([]byte, 64) // JWS ES256: R || S, 32 bytes each
	rs.R.FillBytes(sig[:32])
	rs.S.FillBytes(sig[32:])
	return input + "." + enc(sig), nil
}

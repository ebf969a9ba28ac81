package proxy_test

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
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/proxy"
)

// dpopKey is a client's DPoP key pair.
type dpopKey struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
	jkt  string
}

func newDPoPKey(t testing.TB, alg jose.SignatureAlgorithm) dpopKey {
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
	return dpopKey{priv: priv, alg: alg, jkt: base64.RawURLEncoding.EncodeToString(tp)}
}

func ath(key string) string {
	s := sha256.Sum256([]byte(key))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// proof signs claims with k, its public key in the jwk header; hdr adds or overrides
// protected header fields.
func (k dpopKey) proof(t testing.TB, claims map[string]any, hdr map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	for h, v := range hdr {
		opts = opts.WithHeader(h, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	require.NoError(t, err)
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	jws, err := signer.Sign(payload)
	require.NoError(t, err)
	out, err := jws.CompactSerialize()
	require.NoError(t, err)
	return out
}

func claims(method, htu, key string, iat time.Time) map[string]any {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return map[string]any{"jti": base64.RawURLEncoding.EncodeToString(b), "htm": method, "htu": htu,
		"iat": iat.Unix(), "ath": ath(key)}
}

// unsignedProof builds a JWS by hand (alg none, HS256) that a library would refuse to make.
func unsignedProof(t testing.TB, header, claims map[string]any, sig []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	require.NoError(t, err)
	c, err := json.Marshal(claims)
	require.NoError(t, err)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "." + enc(sig)
}

func TestDPoPVerifier(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	const key = "ap_0123456789abcdefghijklmnopqrstuvwxyzABCD"
	const htu = "https://proxy.example.com/v1/connections/conn_1/token"
	k := newDPoPKey(t, jose.ES256)
	other := newDPoPKey(t, jose.ES256)

	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256, jose.PS256} {
		t.Run("accepts "+string(alg), func(t *testing.T) {
			v, err := proxy.NewDPoPVerifier(false, clock)
			require.NoError(t, err)
			kk := newDPoPKey(t, alg)
			require.NoError(t, v.Verify(kk.proof(t, claims("GET", htu, key, now), nil), "GET", htu, key, kk.jkt))
		})
	}

	t.Run("htu normalisation and query", func(t *testing.T) {
		v, err := proxy.NewDPoPVerifier(false, clock)
		require.NoError(t, err)
		p := k.proof(t, claims("GET", "HTTPS://Proxy.Example.com:443/v1/connections/conn_1/token?x=1#f", key, now), nil)
		require.NoError(t, v.Verify(p, "GET", htu, key, k.jkt))
	})

	refusals := []struct {
		name  string
		proof func() string
		code  string
	}{
		{"wrong htm", func() string { return k.proof(t, claims("POST", htu, key, now), nil) }, "invalid_dpop_proof"},
		{"wrong htu path", func() string {
			return k.proof(t, claims("GET", "https://proxy.example.com/v1/connections/conn_2/token", key, now), nil)
		}, "invalid_dpop_proof"},
		{"wrong htu host", func() string {
			return k.proof(t, claims("GET", "https://evil.example.com/v1/connections/conn_1/token", key, now), nil)
		}, "invalid_dpop_proof"},
		{"wrong htu scheme", func() string {
			return k.proof(t, claims("GET", "http://proxy.example.com/v1/connections/conn_1/token", key, now), nil)
		}, "invalid_dpop_proof"},
		{"stale iat", func() string { return k.proof(t, claims("GET", htu, key, now.Add(-61*time.Second)), nil) }, "invalid_dpop_proof"},
		{"future iat", func() string { return k.proof(t, claims("GET", htu, key, now.Add(61*time.Second)), nil) }, "invalid_dpop_proof"},
		{"wrong key", func() string { return other.proof(t, claims("GET", htu, key, now), nil) }, "invalid_dpop_proof"},
		{"missing ath", func() string {
			c := claims("GET", htu, key, now)
			delete(c, "ath")
			return k.proof(t, c, nil)
		}, "invalid_dpop_proof"},
		{"ath of another key", func() string { return k.proof(t, claims("GET", htu, key+"x", now), nil) }, "invalid_dpop_proof"},
		{"missing jti", func() string {
			c := claims("GET", htu, key, now)
			delete(c, "jti")
			return k.proof(t, c, nil)
		}, "invalid_dpop_proof"},
		{"typ JWT", func() string {
			return k.proof(t, claims("GET", htu, key, now), map[jose.HeaderKey]any{jose.HeaderType: "JWT"})
		}, "invalid_dpop_proof"},
		{"alg none", func() string {
			jwk, _ := json.Marshal(jose.JSONWebKey{Key: k.priv.Public()})
			return unsignedProof(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": json.RawMessage(jwk)},
				claims("GET", htu, key, now), nil)
		}, "invalid_dpop_proof"},
		{"alg HS256", func() string {
			jwk, _ := json.Marshal(jose.JSONWebKey{Key: k.priv.Public()})
			return unsignedProof(t, map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": json.RawMessage(jwk)},
				claims("GET", htu, key, now), []byte("0123456789abcdef0123456789abcdef"))
		}, "invalid_dpop_proof"},
		{"private key in jwk", func() string {
			jwk, _ := json.Marshal(jose.JSONWebKey{Key: k.priv})
			return unsignedProof(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": json.RawMessage(jwk)},
				claims("GET", htu, key, now), make([]byte, 64))
		}, "invalid_dpop_proof"},
		{"bad signature", func() string {
			p := k.proof(t, claims("GET", htu, key, now), nil)
			return p[:len(p)-4] + "AAAA"
		}, "invalid_dpop_proof"},
		{"not a JWS", func() string { return "not.a.jws" }, "invalid_dpop_proof"},
		{"empty", func() string { return "" }, "invalid_dpop_proof"},
	}
	for _, tc := range refusals {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			v, err := proxy.NewDPoPVerifier(false, clock)
			require.NoError(t, err)
			err = v.Verify(tc.proof(), "GET", htu, key, k.jkt)
			var p *problem.Problem
			require.True(t, errors.As(err, &p), "err: %v", err)
			require.Equal(t, tc.code, p.Code)
			require.Equal(t, 401, p.Status)
			require.NotContains(t, p.Error(), key)
		})
	}

	t.Run("replayed jti", func(t *testing.T) {
		v, err := proxy.NewDPoPVerifier(false, clock)
		require.NoError(t, err)
		p := k.proof(t, claims("GET", htu, key, now), nil)
		require.NoError(t, v.Verify(p, "GET", htu, key, k.jkt))
		err = v.Verify(p, "GET", htu, key, k.jkt)
		require.ErrorContains(t, err, "jti was used before")
	})

	t.Run("server nonce", func(t *testing.T) {
		v, err := proxy.NewDPoPVerifier(true, clock)
		require.NoError(t, err)
		err = v.Verify(k.proof(t, claims("GET", htu, key, now), nil), "GET", htu, key, k.jkt)
		var p *problem.Problem
		require.True(t, errors.As(err, &p))
		require.Equal(t, "use_dpop_nonce", p.Code)

		c := claims("GET", htu, key, now)
		c["nonce"] = "forged-nonce"
		require.Error(t, v.Verify(k.proof(t, c, nil), "GET", htu, key, k.jkt))

		c = claims("GET", htu, key, now)
		c["nonce"] = v.Nonce()
		require.NoError(t, v.Verify(k.proof(t, c, nil), "GET", htu, key, k.jkt))
	})
}

func FuzzParseDPoPProof(f *testing.F) {
	k := newDPoPKey(f, jose.ES256)
	now := time.Unix(1_800_000_000, 0)
	f.Add(k.proof(f, claims("GET", "https://a.example/x", "ap_k", now), nil))
	f.Add(unsignedProof(f, map[string]any{"typ": "dpop+jwt", "alg": "none"}, map[string]any{"jti": "1"}, nil))
	f.Add("e30.e30.")
	f.Add("a.b.c")
	f.Add(strings.Repeat("A", 100) + ".." + strings.Repeat("B", 10))
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := proxy.ParseDPoPProof(raw)
		if err != nil {
			require.Nil(t, p)
			return
		}
		// Anything accepted carries every required claim and a thumbprint.
		require.NotEmpty(t, p.JTI)
		require.NotEmpty(t, p.HTM)
		require.NotEmpty(t, p.HTU)
		require.Len(t, p.JKT, 43)
	})
}

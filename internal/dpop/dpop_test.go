package dpop_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/dpop"
	"github.com/authpipe/authpipe-proxy/internal/dpop/dpoptest"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

func TestVerifier(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	const key = "ap_0123456789abcdefghijklmnopqrstuvwxyzABCD"
	const htu = "https://proxy.example.com/v1/connections/conn_1/token"
	k := dpoptest.NewKey(t, jose.ES256)
	other := dpoptest.NewKey(t, jose.ES256)
	ctx := context.Background()
	bind := func(k dpoptest.Key) dpop.Binding { return dpop.Binding{KeyID: "apk_1", APIKey: key, JKT: k.JKT} }

	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256, jose.PS256} {
		t.Run("accepts "+string(alg), func(t *testing.T) {
			v, err := dpop.New(dpop.Options{Now: clock})
			require.NoError(t, err)
			kk := dpoptest.NewKey(t, alg)
			require.NoError(t, v.Verify(ctx, kk.Proof(t, dpoptest.Claims("GET", htu, key, now), nil), "GET", htu, bind(kk)))
		})
	}

	t.Run("htu normalisation and query", func(t *testing.T) {
		v, err := dpop.New(dpop.Options{Now: clock})
		require.NoError(t, err)
		p := k.Proof(t, dpoptest.Claims("GET", "HTTPS://Proxy.Example.com:443/v1/connections/conn_1/token?x=1#f", key, now), nil)
		require.NoError(t, v.Verify(ctx, p, "GET", htu, bind(k)))
	})

	refusals := []struct {
		name  string
		proof func() string
		code  string
	}{
		{"wrong htm", func() string { return k.Proof(t, dpoptest.Claims("POST", htu, key, now), nil) }, "invalid_dpop_proof"},
		{"wrong htu path", func() string {
			return k.Proof(t, dpoptest.Claims("GET", "https://proxy.example.com/v1/connections/conn_2/token", key, now), nil)
		}, "invalid_dpop_proof"},
		{"wrong htu host", func() string {
			return k.Proof(t, dpoptest.Claims("GET", "https://evil.example.com/v1/connections/conn_1/token", key, now), nil)
		}, "invalid_dpop_proof"},
		{"wrong htu scheme", func() string {
			return k.Proof(t, dpoptest.Claims("GET", "http://proxy.example.com/v1/connections/conn_1/token", key, now), nil)
		}, "invalid_dpop_proof"},
		{"stale iat", func() string { return k.Proof(t, dpoptest.Claims("GET", htu, key, now.Add(-61*time.Second)), nil) }, "invalid_dpop_proof"},
		{"future iat", func() string { return k.Proof(t, dpoptest.Claims("GET", htu, key, now.Add(61*time.Second)), nil) }, "invalid_dpop_proof"},
		{"wrong key", func() string { return other.Proof(t, dpoptest.Claims("GET", htu, key, now), nil) }, "invalid_dpop_proof"},
		{"missing ath", func() string {
			c := dpoptest.Claims("GET", htu, key, now)
			delete(c, "ath")
			return k.Proof(t, c, nil)
		}, "invalid_dpop_proof"},
		{"ath of another key", func() string { return k.Proof(t, dpoptest.Claims("GET", htu, key+"x", now), nil) }, "invalid_dpop_proof"},
		{"missing jti", func() string {
			c := dpoptest.Claims("GET", htu, key, now)
			delete(c, "jti")
			return k.Proof(t, c, nil)
		}, "invalid_dpop_proof"},
		{"typ JWT", func() string {
			return k.Proof(t, dpoptest.Claims("GET", htu, key, now), map[jose.HeaderKey]any{jose.HeaderType: "JWT"})
		}, "invalid_dpop_proof"},
		{"alg none", func() string {
			jwk, _ := json.Marshal(jose.JSONWebKey{Key: k.Priv.Public()})
			return dpoptest.Unsigned(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": json.RawMessage(jwk)},
				dpoptest.Claims("GET", htu, key, now), nil)
		}, "invalid_dpop_proof"},
		{"alg HS256", func() string {
			jwk, _ := json.Marshal(jose.JSONWebKey{Key: k.Priv.Public()})
			return dpoptest.Unsigned(t, map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": json.RawMessage(jwk)},
				dpoptest.Claims("GET", htu, key, now), []byte("0123456789abcdef0123456789abcdef"))
		}, "invalid_dpop_proof"},
		{"private key in jwk", func() string {
			jwk, _ := json.Marshal(jose.JSONWebKey{Key: k.Priv})
			return dpoptest.Unsigned(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": json.RawMessage(jwk)},
				dpoptest.Claims("GET", htu, key, now), make([]byte, 64))
		}, "invalid_dpop_proof"},
		{"bad signature", func() string {
			p := k.Proof(t, dpoptest.Claims("GET", htu, key, now), nil)
			return p[:len(p)-4] + "AAAA"
		}, "invalid_dpop_proof"},
		{"not a JWS", func() string { return "not.a.jws" }, "invalid_dpop_proof"},
		{"empty", func() string { return "" }, "invalid_dpop_proof"},
	}
	for _, tc := range refusals {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			v, err := dpop.New(dpop.Options{Now: clock})
			require.NoError(t, err)
			err = v.Verify(ctx, tc.proof(), "GET", htu, bind(k))
			var p *problem.Problem
			require.True(t, errors.As(err, &p), "err: %v", err)
			require.Equal(t, tc.code, p.Code)
			require.Equal(t, 401, p.Status)
			require.NotContains(t, p.Error(), key)
		})
	}

	t.Run("replayed jti", func(t *testing.T) {
		v, err := dpop.New(dpop.Options{Now: clock})
		require.NoError(t, err)
		p := k.Proof(t, dpoptest.Claims("GET", htu, key, now), nil)
		require.NoError(t, v.Verify(ctx, p, "GET", htu, bind(k)))
		err = v.Verify(ctx, p, "GET", htu, bind(k))
		require.ErrorContains(t, err, "jti was used before")
	})

	t.Run("one key's flood does not block another key", func(t *testing.T) {
		v, err := dpop.New(dpop.Options{Now: clock, ReplayPerKey: 3})
		require.NoError(t, err)
		for range 3 {
			require.NoError(t, v.Verify(ctx, k.Proof(t, dpoptest.Claims("GET", htu, key, now), nil), "GET", htu, bind(k)))
		}
		err = v.Verify(ctx, k.Proof(t, dpoptest.Claims("GET", htu, key, now), nil), "GET", htu, bind(k))
		var p *problem.Problem
		require.True(t, errors.As(err, &p), "err: %v", err)
		require.Equal(t, "rate_limited", p.Code)
		require.Equal(t, 429, p.Status)
		require.Positive(t, p.RetryAfter())
		const key2 = "ap_second0123456789abcdefghijklmnopqrstuvwx"
		b2 := dpop.Binding{KeyID: "apk_2", APIKey: key2, JKT: other.JKT}
		require.NoError(t, v.Verify(ctx, other.Proof(t, dpoptest.Claims("GET", htu, key2, now), nil), "GET", htu, b2))
	})

	t.Run("server nonce", func(t *testing.T) {
		v, err := dpop.New(dpop.Options{Nonces: true, Now: clock})
		require.NoError(t, err)
		err = v.Verify(ctx, k.Proof(t, dpoptest.Claims("GET", htu, key, now), nil), "GET", htu, bind(k))
		var p *problem.Problem
		require.True(t, errors.As(err, &p))
		require.Equal(t, "use_dpop_nonce", p.Code)
		require.Equal(t, `DPoP error="use_dpop_nonce", algs="ES256 ES384 EdDSA RS256 PS256"`, dpop.Challenge(err))

		c := dpoptest.Claims("GET", htu, key, now)
		c["nonce"] = "forged-nonce"
		require.Error(t, v.Verify(ctx, k.Proof(t, c, nil), "GET", htu, bind(k)))

		c = dpoptest.Claims("GET", htu, key, now)
		c["nonce"] = v.Nonce()
		require.NoError(t, v.Verify(ctx, k.Proof(t, c, nil), "GET", htu, bind(k)))
	})
}

func FuzzParse(f *testing.F) {
	k := dpoptest.NewKey(f, jose.ES256)
	now := time.Unix(1_800_000_000, 0)
	f.Add(k.Proof(f, dpoptest.Claims("GET", "https://a.example/x", "ap_k", now), nil))
	f.Add(dpoptest.Unsigned(f, map[string]any{"typ": "dpop+jwt", "alg": "none"}, map[string]any{"jti": "1"}, nil))
	f.Add("e30.e30.")
	f.Add("a.b.c")
	f.Add(strings.Repeat("A", 100) + ".." + strings.Repeat("B", 10))
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := dpop.Parse(raw)
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

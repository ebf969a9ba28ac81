package config_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/config"
)

func TestControlPlanePublicKey(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	base := map[string]string{config.EnvControlPlaneURL: "https://cp.example.com", config.EnvControlPlaneToken: "cp-token-value-123456"}
	for name, raw := range map[string]string{
		"base64": base64.StdEncoding.EncodeToString(pub), "base64url raw": base64.RawURLEncoding.EncodeToString(pub), "pem": pemKey,
	} {
		t.Run(name, func(t *testing.T) {
			vars := map[string]string{config.EnvControlPlanePublicKey: raw}
			for k, v := range base {
				vars[k] = v
			}
			cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
			require.NoError(t, err)
			require.True(t, pub.Equal(cfg.ControlPlanePublicKey))
		})
	}
	for name, raw := range map[string]string{
		"short":   base64.StdEncoding.EncodeToString(pub[:31]),
		"not b64": "not a key",
		"rsa pem": "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Load(nil, func(k string) (string, bool) {
				if k == config.EnvControlPlanePublicKey {
					return raw, true
				}
				v, ok := base[k]
				return v, ok
			})
			require.ErrorContains(t, err, config.EnvControlPlanePublicKey)
		})
	}
}

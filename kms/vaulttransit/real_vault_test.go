package vaulttransit_test

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/kmstest"
	"github.com/authpipe/authpipe-proxy/kms/vaulttransit"
)

// TestRealVault runs the conformance suite and the rotation checks against a real Vault
// or OpenBao when VAULT_ADDR and VAULT_TOKEN are set, on a throwaway key
// authpipe-test-<random> in the transit mount (AUTHPIPE_TEST_TRANSIT_MOUNT, default
// "transit"), deleted afterwards. No Vault is buildable on this project's CI, so it
// skips there unless AUTHPIPE_REQUIRE_REAL_VAULT=true makes a missing Vault a failure.
func TestRealVault(t *testing.T) {
	addr, token := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	if addr == "" || token == "" {
		msg := "REAL VAULT TEST NOT RUN: set VAULT_ADDR and VAULT_TOKEN (a token that may create and delete " +
			"transit keys), e.g. `vault server -dev` + `vault secrets enable transit`, to run the KEK suite against it"
		if os.Getenv("AUTHPIPE_REQUIRE_REAL_VAULT") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	mount := os.Getenv("AUTHPIPE_TEST_TRANSIT_MOUNT")
	if mount == "" {
		mount = "transit"
	}

	admin, err := api.NewClient(api.DefaultConfig()) // the usual VAULT_* environment
	require.NoError(t, err)
	mounts, err := admin.Sys().ListMountsWithContext(ctx(t))
	require.NoError(t, err, "listing mounts at %s", addr)
	if m, ok := mounts[mount+"/"]; !ok || m.Type != "transit" {
		msg := "REAL VAULT TEST NOT RUN: no transit mount at " + mount + "/ on " + addr +
			" (vault secrets enable -path=" + mount + " transit)"
		if os.Getenv("AUTHPIPE_REQUIRE_REAL_VAULT") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	suffix := make([]byte, 6)
	_, err = rand.Read(suffix)
	require.NoError(t, err)
	keyName := "authpipe-test-" + hex.EncodeToString(suffix)
	keyPath := mount + "/keys/" + keyName
	_, err = admin.Logical().WriteWithContext(ctx(t), keyPath, map[string]any{"type": "aes256-gcm96"})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Logical().Write(keyPath+"/config", map[string]any{"deletion_allowed": true})
		_, _ = admin.Logical().Delete(keyPath)
	})

	u, err := url.Parse(addr)
	require.NoError(t, err)
	uri := "vault-transit://" + u.Host + "/" + mount + "/" + keyName
	var q []string
	if u.Scheme == "http" {
		q = append(q, "tls=false")
	}
	if ns := strings.Trim(os.Getenv("VAULT_NAMESPACE"), "/"); ns != "" {
		q = append(q, "namespace="+ns)
	}
	if len(q) > 0 {
		uri += "?" + strings.Join(q, "&")
	}
	open := func(t *testing.T) *vaulttransit.Backend {
		// os.LookupEnv (the default): VAULT_TOKEN, VAULT_CACERT, ...
		k, err := vaulttransit.New(vaulttransit.Config{URI: uri, Timeout: testTimeout})
		require.NoError(t, err)
		t.Cleanup(func() { _ = k.Close() })
		return k
	}

	kmstest.Run(t, func(t *testing.T) kms.KEK { return open(t) })

	t.Run("RotationAndMinDecryptionVersion", func(t *testing.T) {
		k := open(t)
		aad := []byte("ws_1|credentials")
		d1 := dek(t)
		w1, err := k.Wrap(ctx(t), d1, aad)
		require.NoError(t, err)
		_, err = admin.Logical().WriteWithContext(ctx(t), keyPath+"/rotate", nil)
		require.NoError(t, err)
		w2, err := k.Wrap(ctx(t), dek(t), aad)
		require.NoError(t, err)
		require.NotEqual(t, w1.KEKVersion, w2.KEKVersion)
		got, err := k.Unwrap(ctx(t), w1, aad)
		require.NoError(t, err)
		require.Equal(t, d1, got)
		_, err = admin.Logical().WriteWithContext(ctx(t), keyPath+"/config",
			map[string]any{"min_decryption_version": w2.KEKVersion})
		require.NoError(t, err)
		_, err = k.Unwrap(ctx(t), w1, aad)
		require.ErrorIs(t, err, kms.ErrDecrypt)
	})
}

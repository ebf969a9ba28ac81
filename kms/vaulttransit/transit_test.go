package vaulttransit_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/kmstest"
	"github.com/authpipe/authpipe-proxy/kms/vaulttransit"
	"github.com/authpipe/authpipe-proxy/kms/vaulttransit/transittest"
)

// env reads VAULT_* from a fixed map: tests never read or change the process environment.
func env(kv map[string]string) vaulttransit.Option {
	return vaulttransit.WithLookupEnv(func(k string) (string, bool) { v, ok := kv[k]; return v, ok })
}

// fastRetries keeps the two retries but with millisecond waits.
var fastRetries = vaulttransit.WithRetries(2, 5*time.Millisecond, 20*time.Millisecond)

// testTimeout replaces the 5 s production default: the race detector on a shared 2-core
// machine can make 64 concurrent TLS handshakes take longer than that. Tests of the
// timeout itself set their own.
const testTimeout = 20 * time.Second

func openKEK(t *testing.T, uri string, vars map[string]string, opts ...vaulttransit.Option) *vaulttransit.Backend {
	t.Helper()
	k, err := vaulttransit.New(vaulttransit.Config{URI: uri, Timeout: testTimeout},
		append([]vaulttransit.Option{env(vars), fastRetries}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// tokenKEK is a KEK on key "authpipe" of a fresh fake, with the root token.
func tokenKEK(t *testing.T) (*transittest.Server, *vaulttransit.Backend) {
	srv := transittest.New(t)
	return srv, openKEK(t, srv.URI("transit", "authpipe"), map[string]string{"VAULT_TOKEN": srv.RootToken()})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func dek(t *testing.T) []byte {
	b := make([]byte, kms.DEKSize)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func TestConformance(t *testing.T) {
	t.Run("token", func(t *testing.T) {
		srv := transittest.New(t)
		kmstest.Run(t, func(t *testing.T) kms.KEK {
			return openKEK(t, srv.URI("transit", "authpipe"), map[string]string{"VAULT_TOKEN": srv.RootToken()})
		})
	})
	t.Run("approle-tls-namespace", func(t *testing.T) {
		srv := transittest.NewTLS(t, transittest.WithMounts("team-a/transit"))
		srv.EnableAppRole("team-a/auth/approle", "role-1", "secret-1")
		ca := filepath.Join(t.TempDir(), "ca.pem")
		require.NoError(t, os.WriteFile(ca, srv.CACertPEM(), 0o600))
		kmstest.Run(t, func(t *testing.T) kms.KEK {
			return openKEK(t, srv.URI("transit", "authpipe", "namespace=team-a"), map[string]string{
				"VAULT_ROLE_ID": "role-1", "VAULT_SECRET_ID": "secret-1", "VAULT_CACERT": ca,
			})
		})
	})
}

func TestKeyRotationAndMinDecryptionVersion(t *testing.T) {
	srv, k := tokenKEK(t)
	aad := []byte("ws_1|credentials")
	d1 := dek(t)
	w1, err := k.Wrap(ctx(t), d1, aad)
	require.NoError(t, err)
	require.Equal(t, "1", w1.KEKVersion)

	// Rotate and raise min_decryption_version through the HTTP API, as an operator would.
	admin, err := api.NewClient(&api.Config{Address: srv.URL()})
	require.NoError(t, err)
	admin.SetToken(srv.RootToken())
	_, err = admin.Logical().WriteWithContext(ctx(t), "transit/keys/authpipe/rotate", nil)
	require.NoError(t, err)
	meta, err := admin.Logical().ReadWithContext(ctx(t), "transit/keys/authpipe")
	require.NoError(t, err)
	require.Equal(t, "2", fmt.Sprint(meta.Data["latest_version"]))

	d2 := dek(t)
	w2, err := k.Wrap(ctx(t), d2, aad)
	require.NoError(t, err)
	require.Equal(t, "2", w2.KEKVersion, "new wraps use the new key version")
	require.Equal(t, w1.KEKID, w2.KEKID, "rotation inside Vault does not change the KEK id")

	for _, c := range []struct {
		w   kms.WrappedKey
		dek []byte
	}{{w1, d1}, {w2, d2}} {
		got, err := k.Unwrap(ctx(t), c.w, aad)
		require.NoError(t, err, "v%s still unwraps", c.w.KEKVersion)
		require.Equal(t, c.dek, got)
	}

	_, err = admin.Logical().WriteWithContext(ctx(t), "transit/keys/authpipe/config", map[string]any{"min_decryption_version": 2})
	require.NoError(t, err)
	_, err = k.Unwrap(ctx(t), w1, aad)
	require.ErrorIs(t, err, kms.ErrDecrypt)
	require.ErrorContains(t, err, "min_decryption_version")
	var re *api.ResponseError
	require.ErrorAs(t, err, &re, "the Vault response stays in the chain")
	require.Equal(t, 400, re.StatusCode)

	got, err := k.Unwrap(ctx(t), w2, aad)
	require.NoError(t, err)
	require.Equal(t, d2, got)
}

func TestAppRoleLogin(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := transittest.New(t, transittest.WithLoginTTL(time.Hour))
	srv.EnableAppRole("ar-prod", "role-1", "secret-1")
	k := openKEK(t, srv.URI("transit", "authpipe"), map[string]string{
		"VAULT_ROLE_ID": "role-1", "VAULT_SECRET_ID": "secret-1", "VAULT_APPROLE_MOUNT": "ar-prod",
	}, vaulttransit.WithClock(clock))

	aad, d := []byte("aad"), dek(t)
	w, err := k.Wrap(ctx(t), d, aad)
	require.NoError(t, err)
	require.Equal(t, 1, srv.Calls(transittest.OpLogin), "one login, then the token is reused")

	// Vault forgets the token (restart, revocation): the 403 triggers one re-login.
	srv.RevokeLoginTokens()
	got, err := k.Unwrap(ctx(t), w, aad)
	require.NoError(t, err)
	require.Equal(t, d, got)
	require.Equal(t, 2, srv.Calls(transittest.OpLogin))

	// Past two thirds of the TTL the backend logs in before the call, with no 403 first.
	srv.ResetCalls()
	mu.Lock()
	now = now.Add(41 * time.Minute)
	mu.Unlock()
	_, err = k.Unwrap(ctx(t), w, aad)
	require.NoError(t, err)
	require.Equal(t, 1, srv.Calls(transittest.OpLogin))
	require.Equal(t, 1, srv.Calls(transittest.OpDecrypt))

	// Wrong credentials fail closed.
	bad := openKEK(t, srv.URI("transit", "authpipe"), map[string]string{
		"VAULT_ROLE_ID": "role-1", "VAULT_SECRET_ID": "wrong", "VAULT_APPROLE_MOUNT": "ar-prod",
	})
	_, err = bad.Wrap(ctx(t), d, aad)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.ErrorContains(t, err, "invalid role or secret ID")
	require.NotContains(t, err.Error(), "wrong", "the secret id is not echoed")
}

func TestKubernetesLogin(t *testing.T) {
	srv := transittest.New(t)
	srv.EnableKubernetes("kubernetes", "authpipe", "eyJhbGciOiJSUzI1NiJ9.sa-token.sig")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("eyJhbGciOiJSUzI1NiJ9.sa-token.sig\n"), 0o600))
	vars := map[string]string{"VAULT_K8S_ROLE": "authpipe", "VAULT_K8S_TOKEN_PATH": tokenFile}

	k := openKEK(t, srv.URI("transit", "authpipe"), vars)
	aad, d := []byte("aad"), dek(t)
	w, err := k.Wrap(ctx(t), d, aad)
	require.NoError(t, err)
	got, err := k.Unwrap(ctx(t), w, aad)
	require.NoError(t, err)
	require.Equal(t, d, got)
	require.Equal(t, 1, srv.Calls(transittest.OpLogin))

	vars["VAULT_K8S_TOKEN_PATH"] = filepath.Join(dir, "missing")
	missing := openKEK(t, srv.URI("transit", "authpipe"), vars)
	require.ErrorIs(t, missing.Ping(ctx(t)), kms.ErrUnavailable)
}

func TestRetriesThenSuccess(t *testing.T) {
	for _, status := range []int{503, 429, 500} {
		t.Run(fmt.Sprintf("HTTP %d", status), func(t *testing.T) {
			srv, k := tokenKEK(t)
			require.NoError(t, k.Ping(ctx(t)))
			aad, d := []byte("aad"), dek(t)

			srv.ResetCalls()
			srv.FailNext(2, status)
			w, err := k.Wrap(ctx(t), d, aad)
			require.NoError(t, err, "two failures are within the retry budget")
			require.Equal(t, 3, srv.Calls(transittest.OpEncrypt))

			srv.ResetCalls()
			srv.FailNext(3, status)
			_, err = k.Unwrap(ctx(t), w, aad)
			require.ErrorIs(t, err, kms.ErrUnavailable)
			require.Equal(t, 3, srv.Calls(transittest.OpDecrypt), "one try and two retries, no more")
		})
	}
}

func TestUnreachableFailsFast(t *testing.T) {
	uri := "vault-transit://" + transittest.Unreachable(t) + "/transit/authpipe?tls=false"
	// Default retries and waits: this is what production gets.
	k, err := vaulttransit.New(vaulttransit.Config{URI: uri}, env(map[string]string{"VAULT_TOKEN": "hvs.x"}))
	require.NoError(t, err, "New does no I/O: Vault may be down when the proxy starts")
	start := time.Now()
	_, err = k.Wrap(ctx(t), dek(t), nil)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.ErrorIs(t, k.Ping(ctx(t)), kms.ErrUnavailable)
	_, err = k.Unwrap(ctx(t), kms.WrappedKey{KEKID: k.ID(), Ciphertext: []byte("vault:v1:AAAA")}, nil)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.Less(t, time.Since(start), 3*time.Second, "three calls with two short retries each")
}

func TestPerCallTimeout(t *testing.T) {
	srv := transittest.New(t)
	k, err := vaulttransit.New(vaulttransit.Config{URI: srv.URI("transit", "authpipe"), Timeout: 200 * time.Millisecond},
		env(map[string]string{"VAULT_TOKEN": srv.RootToken()}), fastRetries)
	require.NoError(t, err)
	srv.SetDelay(5 * time.Second)
	start := time.Now()
	_, err = k.Wrap(ctx(t), dek(t), nil)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestPermissionDeniedFailsClosed(t *testing.T) {
	t.Run("static token", func(t *testing.T) {
		srv := transittest.New(t)
		k := openKEK(t, srv.URI("transit", "authpipe"), map[string]string{"VAULT_TOKEN": srv.IssueToken(t, time.Hour)})
		w, err := k.Wrap(ctx(t), dek(t), nil)
		require.NoError(t, err)
		srv.Forbid(transittest.OpDecrypt, true)
		srv.ResetCalls()
		_, err = k.Unwrap(ctx(t), w, nil)
		require.ErrorIs(t, err, kms.ErrUnavailable)
		require.NotErrorIs(t, err, kms.ErrDecrypt)
		require.ErrorContains(t, err, "permission denied")
		require.ErrorContains(t, err, "transit/decrypt/authpipe")
		require.Equal(t, 1, srv.Calls(transittest.OpDecrypt), "403 is not retried")
	})
	t.Run("approle logs in once more, then gives up", func(t *testing.T) {
		srv := transittest.New(t)
		srv.EnableAppRole("approle", "r", "s")
		k := openKEK(t, srv.URI("transit", "authpipe"), map[string]string{"VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "s"})
		srv.Forbid(transittest.OpEncrypt, true)
		_, err := k.Wrap(ctx(t), dek(t), nil)
		require.ErrorIs(t, err, kms.ErrUnavailable)
		require.ErrorContains(t, err, "permission denied")
		require.Equal(t, 2, srv.Calls(transittest.OpLogin))
		require.Equal(t, 2, srv.Calls(transittest.OpEncrypt))
	})
}

func TestRefusesVaultThatIgnoresAssociatedData(t *testing.T) {
	srv, k := tokenKEK(t)
	srv.IgnoreAssociatedData(true)
	_, err := k.Wrap(ctx(t), dek(t), []byte("ws_1"))
	require.ErrorIs(t, err, kms.ErrConfig)
	require.ErrorContains(t, err, "associated_data")
	require.ErrorIs(t, k.Ping(ctx(t)), kms.ErrConfig)

	srv.IgnoreAssociatedData(false)
	require.NoError(t, k.Ping(ctx(t)), "the probe is retried until it passes")
}

func TestUnwrapRejectsMalformedLocally(t *testing.T) {
	srv, k := tokenKEK(t)
	w, err := k.Wrap(ctx(t), dek(t), nil)
	require.NoError(t, err)
	srv.ResetCalls()
	for name, bad := range map[string]kms.WrappedKey{
		"version mismatch": {KEKID: k.ID(), KEKVersion: "7", Ciphertext: w.Ciphertext},
		"no prefix":        {KEKID: k.ID(), Ciphertext: w.Ciphertext[6:]},
		"version zero":     {KEKID: k.ID(), Ciphertext: []byte("vault:v0:AAAA")},
		"not base64":       {KEKID: k.ID(), Ciphertext: append([]byte("vault:v1:"), 0xff, '"')},
		"empty":            {KEKID: k.ID()},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := k.Unwrap(ctx(t), bad, nil)
			require.ErrorIs(t, err, kms.ErrDecrypt)
		})
	}
	require.Zero(t, srv.Calls(transittest.OpDecrypt), "malformed input never reaches Vault")
}

func TestMissingMountOrKey(t *testing.T) {
	srv := transittest.New(t)
	vars := map[string]string{"VAULT_TOKEN": srv.RootToken()}
	_, err := openKEK(t, srv.URI("nomount", "authpipe"), vars).Wrap(ctx(t), dek(t), nil)
	require.ErrorIs(t, err, kms.ErrConfig)

	// A wrapped key whose Transit key has since gone (another fake, same id).
	k := openKEK(t, srv.URI("transit", "authpipe"), vars)
	w, err := k.Wrap(ctx(t), dek(t), nil)
	require.NoError(t, err)
	w.KEKID = "vault-transit:" + srv.HostPort() + "/transit/other"
	_, err = openKEK(t, srv.URI("transit", "other"), vars).Unwrap(ctx(t), w, nil)
	require.ErrorIs(t, err, kms.ErrConfig)
	require.ErrorContains(t, err, "does not exist")
}

func TestTLSIsVerified(t *testing.T) {
	srv := transittest.NewTLS(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, srv.CACertPEM(), 0o600))
	uri := srv.URI("transit", "authpipe")
	require.NotContains(t, uri, "tls=")

	untrusted := openKEK(t, uri, map[string]string{"VAULT_TOKEN": srv.RootToken()})
	err := untrusted.Ping(ctx(t))
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.ErrorContains(t, err, "certificate")
	require.Zero(t, srv.Calls(transittest.OpEncrypt), "nothing is sent to an unverified server")

	for name, vars := range map[string]map[string]string{
		"VAULT_CACERT":       {"VAULT_TOKEN": srv.RootToken(), "VAULT_CACERT": ca},
		"VAULT_CACERT_BYTES": {"VAULT_TOKEN": srv.RootToken(), "VAULT_CACERT_BYTES": string(srv.CACertPEM())},
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, openKEK(t, uri, vars).Ping(ctx(t)))
		})
	}
}

func TestProcessEnvironmentIsNotRead(t *testing.T) {
	srv := transittest.New(t)
	// What api.DefaultConfig and api.NewClient would pick up from the process.
	t.Setenv("VAULT_TOKEN", "hvs.from-process")
	t.Setenv("VAULT_NAMESPACE", "elsewhere")
	t.Setenv("VAULT_AGENT_ADDR", "http://"+transittest.Unreachable(t))
	t.Setenv("VAULT_HEADERS", `{"X-Extra":"from-process"}`)
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	k := openKEK(t, srv.URI("transit", "authpipe"), map[string]string{"VAULT_TOKEN": srv.RootToken()})
	require.NoError(t, k.Ping(ctx(t)))
}

func TestConcurrentReloginIsSerialized(t *testing.T) {
	srv := transittest.New(t)
	srv.EnableAppRole("approle", "r", "s")
	k := openKEK(t, srv.URI("transit", "authpipe"), map[string]string{"VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "s"})
	w, err := k.Wrap(ctx(t), dek(t), nil)
	require.NoError(t, err)
	srv.RevokeLoginTokens()
	srv.ResetCalls()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := k.Unwrap(ctx(t), w, nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 1, srv.Calls(transittest.OpLogin), "16 callers hitting 403 share one re-login")
}

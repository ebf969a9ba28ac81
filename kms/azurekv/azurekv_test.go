package azurekv_test

import (
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/azurekv"
	"github.com/authpipe/authpipe-proxy/kms/azurekv/azurekvtest"
	"github.com/authpipe/authpipe-proxy/kms/kmstest"
)

func open(t *testing.T, s *azurekvtest.Server, uri string) *azurekv.Backend {
	t.Helper()
	// A generous timeout: RSA under the race detector on two busy cores is slow.
	b, err := azurekv.Open(context.Background(), uri, azurekv.Options{Credential: s.Credential(), Transport: s.HTTPClient(), Timeout: 30 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func dek(t *testing.T) []byte {
	b := make([]byte, kms.DEKSize)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func TestConformance(t *testing.T) {
	for name, tc := range map[string]struct {
		hsm  bool
		kind azurekvtest.KeyKind
		alg  string
	}{
		"vault RSA-OAEP-256": {false, azurekvtest.RSA, azurekv.AlgRSAOAEP256},
		"managed HSM A256KW": {true, azurekvtest.Oct, azurekv.AlgA256KW},
	} {
		t.Run(name, func(t *testing.T) {
			s := azurekvtest.NewServer(t, azurekvtest.Config{ManagedHSM: tc.hsm})
			uri := s.URI(s.CreateKey(t, tc.kind))
			if tc.hsm && tc.alg == azurekv.AlgRSAOAEP256 {
				uri += "&alg=RSA-OAEP-256"
			}
			kmstest.Run(t, func(t *testing.T) kms.KEK {
				b := open(t, s, uri)
				require.Equal(t, tc.alg, b.Alg())
				return b
			})
			require.Positive(t, s.Calls("wrapkey"))
			require.Positive(t, s.Calls("unwrapkey"))
			require.Positive(t, s.Challenges(), "the SDK went through the bearer challenge")
			require.Equal(t, []string{s.Resource() + "/.default tenant=" + azurekvtest.Tenant}, s.Scopes(),
				"tokens were asked only for the vault's resource, in the challenge's tenant")
		})
	}
}

func TestVersionsAndRotationInsideKeyVault(t *testing.T) {
	s := azurekvtest.NewServer(t, azurekvtest.Config{AlwaysDecrypt: true}) // the private key at work
	name := s.CreateKey(t, azurekvtest.RSA)
	b := open(t, s, s.URI(name))
	ctx, aad := context.Background(), []byte("ws_1|credentials")
	require.Equal(t, "azurekv:"+s.Host()+"/keys/"+name, b.ID())

	d1 := dek(t)
	w1, err := b.Wrap(ctx, d1, aad)
	require.NoError(t, err)
	require.Len(t, w1.KEKVersion, 32)

	v2 := s.RotateKey(t, name)
	d2 := dek(t)
	w2, err := b.Wrap(ctx, d2, aad)
	require.NoError(t, err)
	require.Equal(t, v2, w2.KEKVersion, "new wraps use the current version")
	got, err := b.Unwrap(ctx, w1, aad)
	require.NoError(t, err, "a DEK wrapped under the old version still opens")
	require.Equal(t, d1, got)

	s.SetEnabled(name, w1.KEKVersion, false)
	_, err = b.Unwrap(ctx, w1, aad)
	require.ErrorIs(t, err, kms.ErrUnavailable, "a disabled version is an outage, not a corrupt DEK")
	require.NotErrorIs(t, err, kms.ErrDecrypt)
	got, err = b.Unwrap(ctx, w2, aad)
	require.NoError(t, err)
	require.Equal(t, d2, got)

	w1.KEKVersion = ""
	_, err = b.Unwrap(ctx, w1, aad)
	require.ErrorIs(t, err, kms.ErrDecrypt, "a wrapped key without its version is refused")

	// A URI that pins a version wraps under that version only.
	pinned := open(t, s, "azurekv://"+s.Host()+"/keys/"+name+"/"+w2.KEKVersion+"?endpoint="+s.URL)
	s.RotateKey(t, name)
	w, err := pinned.Wrap(ctx, dek(t), aad)
	require.NoError(t, err)
	require.Equal(t, v2, w.KEKVersion)
	require.Equal(t, b.ID(), pinned.ID(), "the version is not part of the KEK id")
}

func TestAADIsBoundInsideTheWrap(t *testing.T) {
	s := azurekvtest.NewServer(t, azurekvtest.Config{ManagedHSM: true})
	b := open(t, s, s.URI(s.CreateKey(t, azurekvtest.Oct)))
	ctx := context.Background()
	d := dek(t)
	w, err := b.Wrap(ctx, d, nil)
	require.NoError(t, err)
	got, err := b.Unwrap(ctx, w, []byte{})
	require.NoError(t, err, "nil and empty aad are the same")
	require.Equal(t, d, got)
	_, err = b.Unwrap(ctx, w, []byte{0})
	require.ErrorIs(t, err, kms.ErrDecrypt)
	require.ErrorContains(t, err, "bound to other associated data")
}

func TestFailures(t *testing.T) {
	s := azurekvtest.NewServer(t, azurekvtest.Config{})
	name := s.CreateKey(t, azurekvtest.RSA)
	b := open(t, s, s.URI(name))
	ctx := context.Background()
	w, err := b.Wrap(ctx, dek(t), nil)
	require.NoError(t, err)

	s.FailNext(2, http.StatusServiceUnavailable)
	_, err = b.Unwrap(ctx, w, nil)
	require.NoError(t, err, "two 503s are retried")

	s.FailNext(5, http.StatusTooManyRequests)
	before := s.Calls("unwrapkey")
	_, err = b.Unwrap(ctx, w, nil)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.EqualValues(t, 3, s.Calls("unwrapkey")-before, "attempts are bounded")
	s.FailNext(0, 0)

	wrongToken := s.Credential()
	wrongToken.Token = "stolen"
	bad, err := azurekv.Open(ctx, s.URI(name), azurekv.Options{Credential: wrongToken, Transport: s.HTTPClient()})
	require.NoError(t, err)
	err = bad.Ping(ctx)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.ErrorContains(t, err, "401")

	missing, err := azurekv.Open(ctx, s.URI("no-such-key"), azurekv.Options{Credential: s.Credential(), Transport: s.HTTPClient()})
	require.NoError(t, err)
	require.ErrorIs(t, missing.Ping(ctx), kms.ErrUnavailable)
	require.ErrorContains(t, missing.Ping(ctx), "KeyNotFound")

	// The wrong algorithm for the key type: Key Vault refuses the wrap.
	hsm := azurekvtest.NewServer(t, azurekvtest.Config{ManagedHSM: true})
	rsaOnHSM := open(t, hsm, hsm.URI(hsm.CreateKey(t, azurekvtest.RSA))) // default alg A256KW
	require.ErrorIs(t, rsaOnHSM.Ping(ctx), kms.ErrUnavailable)
}

func TestManagedHSMWithAnRSAKey(t *testing.T) {
	s := azurekvtest.NewServer(t, azurekvtest.Config{ManagedHSM: true})
	b := open(t, s, s.URI(s.CreateKey(t, azurekvtest.RSA))+"&alg=RSA-OAEP-256")
	require.Equal(t, azurekv.AlgRSAOAEP256, b.Alg())
	d, aad := dek(t), []byte("ws_1|credentials")
	w, err := b.Wrap(context.Background(), d, aad)
	require.NoError(t, err)
	got, err := b.Unwrap(context.Background(), w, aad)
	require.NoError(t, err)
	require.Equal(t, d, got)
}

// TestChallengeForAnotherResourceIsRefused: a server whose challenge asks for a token for
// another resource (ARM, say) never gets one.
func TestChallengeForAnotherResourceIsRefused(t *testing.T) {
	hsm := azurekvtest.NewServer(t, azurekvtest.Config{ManagedHSM: true}) // challenges for managedhsm.azure.net
	name := hsm.CreateKey(t, azurekvtest.Oct)
	// A vault URI (token scope vault.azure.net) pointed at it.
	b := open(t, hsm, "azurekv://authpipe-test.vault.azure.net/keys/"+name+"?alg=RSA-OAEP-256&endpoint="+hsm.URL)
	err := b.Ping(context.Background())
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.ErrorContains(t, err, "challenge")
	require.Empty(t, hsm.Scopes(), "no token was requested")
}

func TestUnreachableEndpointFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	s := azurekvtest.NewServer(t, azurekvtest.Config{})
	b, err := azurekv.Open(context.Background(), "azurekv://x-vault.vault.azure.net/keys/k?endpoint=https://"+addr, azurekv.Options{Credential: s.Credential()})
	require.NoError(t, err)
	start := time.Now()
	require.ErrorIs(t, b.Ping(context.Background()), kms.ErrUnavailable)
	require.Less(t, time.Since(start), 5*time.Second)
}

func TestOpenAndNew(t *testing.T) {
	s := azurekvtest.NewServer(t, azurekvtest.Config{})
	for _, uri := range []string{"azurekv://", "gcpkms://x", "azurekv://v.example.com/keys/k"} {
		_, err := azurekv.Open(context.Background(), uri, azurekv.Options{Credential: s.Credential()})
		require.ErrorIs(t, err, kms.ErrConfig, uri)
	}
	_, err := azurekv.Open(context.Background(), s.URI("k"), azurekv.Options{Credential: s.Credential(), Timeout: -1})
	require.ErrorIs(t, err, kms.ErrConfig)
	_, err = azurekv.New(nil, azurekv.Config{}, time.Second)
	require.ErrorIs(t, err, kms.ErrConfig)

	b := open(t, s, s.URI(s.CreateKey(t, azurekvtest.RSA)))
	_, err = b.Wrap(context.Background(), make([]byte, 16), nil)
	require.Error(t, err)
	require.Zero(t, s.Calls("wrapkey"), "refused before any Key Vault call")
	require.NoError(t, b.Close())
	require.Error(t, b.Ping(context.Background()))
}

// TestRealKeyVault runs the conformance suite against Azure Key Vault when
// AUTHPIPE_TEST_AZUREKV_URI names a key (credentials: azidentity's DefaultAzureCredential).
func TestRealKeyVault(t *testing.T) {
	uri := os.Getenv("AUTHPIPE_TEST_AZUREKV_URI")
	if uri == "" {
		t.Skip("AUTHPIPE_TEST_AZUREKV_URI is not set: NOT testing against real Azure Key Vault (the local HTTPS endpoint tests above still ran)")
	}
	kmstest.Run(t, func(t *testing.T) kms.KEK {
		b, err := azurekv.Open(context.Background(), uri, azurekv.Options{})
		require.NoError(t, err)
		return b
	})
}

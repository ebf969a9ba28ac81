package gcpkms_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/gcpkms"
	"github.com/authpipe/authpipe-proxy/kms/gcpkms/gcpkmstest"
	"github.com/authpipe/authpipe-proxy/kms/kmstest"
)

func open(t *testing.T, uri string, opts gcpkms.Options) *gcpkms.Backend {
	t.Helper()
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 20 * time.Millisecond
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second // two busy cores under the race detector
	}
	b, err := gcpkms.Open(context.Background(), uri, opts)
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
	s := gcpkmstest.NewServer(t, gcpkmstest.Config{})
	key := s.CreateKey(t)
	kmstest.Run(t, func(t *testing.T) kms.KEK { return open(t, s.URI(key), gcpkms.Options{}) })
	require.Positive(t, s.Calls("Encrypt"))
	require.Positive(t, s.Calls("Decrypt"))
}

func TestVersionsAndRotationInsideCloudKMS(t *testing.T) {
	s := gcpkmstest.NewServer(t, gcpkmstest.Config{})
	key := s.CreateKey(t)
	b := open(t, s.URI(key), gcpkms.Options{})
	ctx := context.Background()
	require.Equal(t, "gcpkms:"+key, b.ID())

	d1, aad := dek(t), []byte("ws_1|credentials")
	w1, err := b.Wrap(ctx, d1, aad)
	require.NoError(t, err)
	require.Equal(t, "1", w1.KEKVersion)

	require.Equal(t, "2", s.RotateKey(t, key))
	d2 := dek(t)
	w2, err := b.Wrap(ctx, d2, aad)
	require.NoError(t, err)
	require.Equal(t, "2", w2.KEKVersion, "new wraps use the new primary version")

	got, err := b.Unwrap(ctx, w1, aad)
	require.NoError(t, err, "a DEK wrapped under the old version still opens")
	require.Equal(t, d1, got)

	s.SetEnabled(key, "1", false)
	_, err = b.Unwrap(ctx, w1, aad)
	require.ErrorIs(t, err, kms.ErrUnavailable, "a disabled version is an outage, not a corrupt DEK")
	require.NotErrorIs(t, err, kms.ErrDecrypt)
	got, err = b.Unwrap(ctx, w2, aad)
	require.NoError(t, err)
	require.Equal(t, d2, got)

	s.SetEnabled(key, "2", false)
	require.ErrorIs(t, b.Ping(ctx), kms.ErrUnavailable, "the primary version is disabled")
	_, err = b.Wrap(ctx, dek(t), aad)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.ErrorContains(t, err, "FailedPrecondition")
}

func TestAnotherKeysCiphertextIsADecryptError(t *testing.T) {
	s := gcpkmstest.NewServer(t, gcpkmstest.Config{})
	a, other := open(t, s.URI(s.CreateKey(t)), gcpkms.Options{}), open(t, s.URI(s.CreateKey(t)), gcpkms.Options{})
	w, err := other.Wrap(context.Background(), dek(t), nil)
	require.NoError(t, err)
	w.KEKID = a.ID()
	_, err = a.Unwrap(context.Background(), w, nil)
	require.ErrorIs(t, err, kms.ErrDecrypt)
	require.ErrorContains(t, err, "correct CryptoKey")
}

func TestCorruptionInTransitIsDetectedAndRetried(t *testing.T) {
	s := gcpkmstest.NewServer(t, gcpkmstest.Config{})
	key := s.CreateKey(t)
	b := open(t, s.URI(key), gcpkms.Options{})
	ctx := context.Background()
	d := dek(t)

	s.CorruptNext(1)
	w, err := b.Wrap(ctx, d, nil)
	require.NoError(t, err, "one corrupted response is retried")
	require.EqualValues(t, 2, s.Calls("Encrypt"))

	s.CorruptNext(2)
	_, err = b.Wrap(ctx, d, nil)
	require.ErrorIs(t, err, kms.ErrUnavailable, "a ciphertext that fails its checksum is never stored")
	require.ErrorContains(t, err, "ciphertext_crc32c")

	s.CorruptNext(1)
	got, err := b.Unwrap(ctx, w, nil)
	require.NoError(t, err)
	require.Equal(t, d, got)
	s.CorruptNext(2)
	_, err = b.Unwrap(ctx, w, nil)
	require.ErrorIs(t, err, kms.ErrUnavailable, "a corrupted plaintext is an outage, not a bad DEK")
	require.NotErrorIs(t, err, kms.ErrDecrypt)
}

func TestErrorsAndRetries(t *testing.T) {
	for _, tc := range []struct {
		code    codes.Code
		n       int
		wantErr bool
		calls   int64
	}{
		{codes.Unavailable, 2, false, 3},
		{codes.Unavailable, 5, true, 3},
		{codes.ResourceExhausted, 1, false, 2},
		{codes.PermissionDenied, 1, true, 1},
		{codes.Unauthenticated, 1, true, 1},
		{codes.InvalidArgument, 1, true, 1},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			s := gcpkmstest.NewServer(t, gcpkmstest.Config{})
			b := open(t, s.URI(s.CreateKey(t)), gcpkms.Options{})
			w, err := b.Wrap(context.Background(), dek(t), nil)
			require.NoError(t, err)
			s.FailNext(tc.n, tc.code)
			_, err = b.Unwrap(context.Background(), w, nil)
			if !tc.wantErr {
				require.NoError(t, err)
			} else if tc.code == codes.InvalidArgument {
				require.ErrorIs(t, err, kms.ErrDecrypt)
			} else {
				require.ErrorIs(t, err, kms.ErrUnavailable)
			}
			require.Equal(t, tc.calls, s.Calls("Decrypt"), "attempts are bounded")
		})
	}
}

func TestUnreachableEndpointFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	b, err := gcpkms.Open(context.Background(), "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k?endpoint=http://"+addr, gcpkms.Options{})
	require.NoError(t, err)
	defer b.Close()
	start := time.Now()
	require.ErrorIs(t, b.Ping(context.Background()), kms.ErrUnavailable)
	_, err = b.Unwrap(context.Background(), kms.WrappedKey{KEKID: b.ID(), Ciphertext: []byte{1}}, nil)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.Less(t, time.Since(start), 5*time.Second)
}

// TestTLSAndBearerToken runs the real client over TLS with a token, as ADC would supply
// one (Workload Identity's metadata server, a service account): the fake refuses calls
// without it.
func TestTLSAndBearerToken(t *testing.T) {
	cert := httptest.NewUnstartedServer(nil)
	cert.StartTLS() // only for its self-signed loopback certificate
	defer cert.Close()
	s := gcpkmstest.NewServer(t, gcpkmstest.Config{TLS: cert.TLS, Token: "ya29.test-token"})
	key := s.CreateKey(t)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Certificate())
	uri := "gcpkms://" + key + "?endpoint=https://" + s.Addr
	tlsOpt := option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})))

	kmstest.Run(t, func(t *testing.T) kms.KEK {
		return open(t, uri, gcpkms.Options{ClientOptions: []option.ClientOption{tlsOpt,
			option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "ya29.test-token"}))}})
	})
	require.Zero(t, s.Unauthenticated())

	wrong := open(t, uri, gcpkms.Options{ClientOptions: []option.ClientOption{tlsOpt,
		option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "stolen"}))}})
	require.ErrorIs(t, wrong.Ping(context.Background()), kms.ErrUnavailable)
	require.Positive(t, s.Unauthenticated())
}

func TestOpenAndNew(t *testing.T) {
	for _, uri := range []string{"gcpkms://", "awskms://alias/x", "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k?endpoint=http://10.0.0.1:80"} {
		_, err := gcpkms.Open(context.Background(), uri, gcpkms.Options{})
		require.ErrorIs(t, err, kms.ErrConfig, uri)
	}
	_, err := gcpkms.Open(context.Background(), "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k?endpoint=http://127.0.0.1:1", gcpkms.Options{Timeout: -1})
	require.ErrorIs(t, err, kms.ErrConfig)
	_, err = gcpkms.New(nil, "projects/p/locations/l/keyRings/r/cryptoKeys/k")
	require.ErrorIs(t, err, kms.ErrConfig)

	s := gcpkmstest.NewServer(t, gcpkmstest.Config{})
	b := open(t, s.URI(s.CreateKey(t)), gcpkms.Options{})
	_, err = b.Wrap(context.Background(), make([]byte, 16), nil)
	require.Error(t, err)
	_, err = b.Unwrap(context.Background(), kms.WrappedKey{KEKID: b.ID()}, nil)
	require.ErrorIs(t, err, kms.ErrDecrypt)
	require.Zero(t, s.Calls("Encrypt")+s.Calls("Decrypt"), "refused before any KMS call")
	require.NoError(t, b.Close())
	require.NoError(t, b.Close())
	require.Error(t, b.Ping(context.Background()))
}

// TestRealCloudKMS runs the conformance suite against Google Cloud KMS when
// AUTHPIPE_TEST_GCPKMS_URI names a key (credentials: Application Default Credentials).
func TestRealCloudKMS(t *testing.T) {
	uri := os.Getenv("AUTHPIPE_TEST_GCPKMS_URI")
	if uri == "" {
		t.Skip("AUTHPIPE_TEST_GCPKMS_URI is not set: NOT testing against real Google Cloud KMS (the local gRPC endpoint tests above still ran)")
	}
	kmstest.Run(t, func(t *testing.T) kms.KEK {
		b, err := gcpkms.Open(context.Background(), uri, gcpkms.Options{})
		require.NoError(t, err)
		return b
	})
}

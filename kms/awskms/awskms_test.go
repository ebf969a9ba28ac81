package awskms_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/awskms"
	"github.com/authpipe/authpipe-proxy/kms/awskms/awskmstest"
	"github.com/authpipe/authpipe-proxy/kms/kmstest"
)

// isolated keeps the host's AWS files and profile out of a test's configuration.
func isolated(t *testing.T, more ...func(*config.LoadOptions) error) []func(*config.LoadOptions) error {
	empty := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	return append([]func(*config.LoadOptions) error{
		config.WithSharedConfigFiles([]string{empty}),
		config.WithSharedCredentialsFiles([]string{empty}),
		config.WithCredentialsProvider(awskmstest.Credentials()),
	}, more...)
}

// open runs the real SDK client, built by awskms.Open, against the fake endpoint.
func open(t *testing.T, uri string, opts awskms.Options) *awskms.Backend {
	t.Helper()
	opts.LoadOptions = isolated(t, opts.LoadOptions...)
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 20 * time.Millisecond
	}
	b, err := awskms.Open(context.Background(), uri, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func uriFor(s *awskmstest.Server, key string) string {
	return "awskms://" + key + "?region=" + s.Region() + "&endpoint=" + s.URL
}

func dek(t *testing.T) []byte {
	b := make([]byte, kms.DEKSize)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func TestConformance(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{})
	key := s.CreateKey(t)
	kmstest.Run(t, func(t *testing.T) kms.KEK { return open(t, uriFor(s, key.ID), awskms.Options{}) })
	require.Positive(t, s.Calls("Encrypt"))
	require.Positive(t, s.Calls("Decrypt"))
	require.Zero(t, s.Rejected(), "every request carried a valid SigV4 signature")
}

func TestKeyReferencesAndID(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{Region: "eu-central-1"})
	key := s.CreateKey(t)
	s.CreateAlias("alias/authpipe-credentials", key.ID)
	cases := map[string]string{
		"key id":    uriFor(s, key.ID),
		"alias":     uriFor(s, "alias/authpipe-credentials"),
		"key ARN":   "awskms://" + key.ARN + "?endpoint=" + s.URL, // region from the ARN
		"alias ARN": "awskms://" + s.AliasARN("alias/authpipe-credentials") + "?endpoint=" + s.URL,
	}
	for name, uri := range cases {
		t.Run(name, func(t *testing.T) {
			b := open(t, uri, awskms.Options{})
			cfg, err := awskms.ParseURI(uri)
			require.NoError(t, err)
			require.Equal(t, "awskms:"+cfg.Key, b.ID())
			d, aad := dek(t), []byte("ws_1|credentials")
			w, err := b.Wrap(context.Background(), d, aad)
			require.NoError(t, err)
			require.Empty(t, w.KEKVersion)
			got, err := b.Unwrap(context.Background(), w, aad)
			require.NoError(t, err)
			require.Equal(t, d, got)
			require.NoError(t, b.Ping(context.Background()))
		})
	}
}

// sdkClient is a bare SDK client on the fake, to make ciphertexts the backend never would.
func sdkClient(s *awskmstest.Server) *kmssdk.Client {
	return kmssdk.New(kmssdk.Options{Region: s.Region(), BaseEndpoint: aws.String(s.URL), Credentials: awskmstest.Credentials()})
}

func TestEncryptionContextEnforced(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{})
	key := s.CreateKey(t)
	b := open(t, uriFor(s, key.ID), awskms.Options{})
	raw := sdkClient(s)
	ctx := context.Background()

	t.Run("the aad travels as the encryption context", func(t *testing.T) {
		w, err := b.Wrap(ctx, dek(t), []byte("ws_1|credentials"))
		require.NoError(t, err)
		_, err = raw.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: w.Ciphertext})
		var invalid *types.InvalidCiphertextException
		require.ErrorAs(t, err, &invalid, "without the context KMS refuses")
		_, err = raw.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: w.Ciphertext, EncryptionContext: map[string]string{
			awskms.EncryptionContextKey: "v1:d3NfMXxjcmVkZW50aWFscw==", // base64("ws_1|credentials")
		}})
		require.NoError(t, err)
	})
	t.Run("a context-less ciphertext never opens, not even with an empty aad", func(t *testing.T) {
		out, err := raw.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: aws.String(key.ID), Plaintext: dek(t)})
		require.NoError(t, err)
		for _, aad := range [][]byte{nil, {}} {
			_, err = b.Unwrap(ctx, kms.WrappedKey{KEKID: b.ID(), Ciphertext: out.CiphertextBlob}, aad)
			require.ErrorIs(t, err, kms.ErrDecrypt)
		}
	})
	t.Run("empty and nil aad are the same context", func(t *testing.T) {
		d := dek(t)
		w, err := b.Wrap(ctx, d, nil)
		require.NoError(t, err)
		got, err := b.Unwrap(ctx, w, []byte{})
		require.NoError(t, err)
		require.Equal(t, d, got)
		_, err = b.Unwrap(ctx, w, []byte{0})
		require.ErrorIs(t, err, kms.ErrDecrypt)
	})
	t.Run("a ciphertext of another key is IncorrectKey, a decrypt error", func(t *testing.T) {
		other := s.CreateKey(t)
		ob := open(t, uriFor(s, other.ID), awskms.Options{})
		w, err := ob.Wrap(ctx, dek(t), nil)
		require.NoError(t, err)
		w.KEKID = b.ID()
		_, err = b.Unwrap(ctx, w, nil)
		require.ErrorIs(t, err, kms.ErrDecrypt)
		var incorrect *types.IncorrectKeyException
		require.ErrorAs(t, err, &incorrect)
	})
	t.Run("a plaintext that is not a DEK is refused", func(t *testing.T) {
		out, err := raw.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: aws.String(key.ID), Plaintext: []byte("short"),
			EncryptionContext: map[string]string{awskms.EncryptionContextKey: "v1:"}})
		require.NoError(t, err)
		_, err = b.Unwrap(ctx, kms.WrappedKey{KEKID: b.ID(), Ciphertext: out.CiphertextBlob}, nil)
		require.ErrorIs(t, err, kms.ErrDecrypt)
	})
}

func TestDisabledKeyIsAnOutage(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{})
	key := s.CreateKey(t)
	b := open(t, uriFor(s, key.ID), awskms.Options{})
	ctx := context.Background()
	d := dek(t)
	w, err := b.Wrap(ctx, d, nil)
	require.NoError(t, err)

	s.SetEnabled(key.ID, false)
	_, err = b.Wrap(ctx, dek(t), nil)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.ErrorContains(t, err, "DisabledException")
	_, err = b.Unwrap(ctx, w, nil)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.NotErrorIs(t, err, kms.ErrDecrypt, "a disabled key does not make the DEK corrupt")
	require.ErrorIs(t, b.Ping(ctx), kms.ErrUnavailable)

	s.SetEnabled(key.ID, true)
	got, err := b.Unwrap(ctx, w, nil)
	require.NoError(t, err)
	require.Equal(t, d, got)
	require.NoError(t, b.Ping(ctx))
}

func TestRetries(t *testing.T) {
	cases := []struct {
		name      string
		inject    func(*awskmstest.Server)
		wantErr   bool
		wantCalls int
	}{
		{"throttled twice then served", func(s *awskmstest.Server) { s.Throttle(2) }, false, 3},
		{"throttled beyond the 3 attempts", func(s *awskmstest.Server) { s.Throttle(5) }, true, 3},
		{"KMSInternalException 500 then served", func(s *awskmstest.Server) {
			s.FailNext(1, http.StatusInternalServerError, "KMSInternalException")
		}, false, 2},
		{"503 beyond the attempts", func(s *awskmstest.Server) {
			s.FailNext(3, http.StatusServiceUnavailable, "DependencyTimeoutException")
		}, true, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := awskmstest.NewServer(t, awskmstest.Config{})
			key := s.CreateKey(t)
			b := open(t, uriFor(s, key.ID), awskms.Options{})
			tc.inject(s)
			_, err := b.Wrap(context.Background(), dek(t), nil)
			if tc.wantErr {
				require.ErrorIs(t, err, kms.ErrUnavailable)
				require.NotErrorIs(t, err, kms.ErrDecrypt)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.wantCalls, s.Calls("Encrypt"), "attempts are bounded")
		})
	}
}

func TestUnreachableEndpointFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now: connection refused

	// Production defaults for timeout, attempts and backoff.
	opts := awskms.Options{LoadOptions: isolated(t)}
	b, err := awskms.Open(context.Background(), "awskms://alias/x?region=us-east-1&endpoint=http://"+addr, opts)
	require.NoError(t, err)
	defer b.Close()
	start := time.Now()
	_, err = b.Wrap(context.Background(), dek(t), nil)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.Less(t, time.Since(start), 3*time.Second)
	require.ErrorIs(t, b.Ping(context.Background()), kms.ErrUnavailable)
}

func TestHangingEndpointTimesOut(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)

	b := open(t, "awskms://alias/x?region=us-east-1&endpoint="+hang.URL, awskms.Options{Timeout: 300 * time.Millisecond})
	start := time.Now()
	_, err := b.Unwrap(context.Background(), kms.WrappedKey{KEKID: b.ID(), Ciphertext: []byte{1}}, nil)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.Less(t, time.Since(start), 2*time.Second, "the per-call timeout bounds retries too")
}

func TestWrongCredentialsAreAnOutage(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{})
	key := s.CreateKey(t)
	b := open(t, uriFor(s, key.ID), awskms.Options{LoadOptions: []func(*config.LoadOptions) error{
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(awskmstest.AccessKeyID, "wrong", "")),
	}})
	err := b.Ping(context.Background())
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.ErrorContains(t, err, "InvalidSignatureException")
	require.Positive(t, s.Rejected())
}

func TestOpenNeedsARegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	_, err := awskms.Open(context.Background(), "awskms://alias/x", awskms.Options{LoadOptions: isolated(t)})
	require.ErrorIs(t, err, kms.ErrConfig)

	t.Setenv("AWS_REGION", "ap-south-1")
	b, err := awskms.Open(context.Background(), "awskms://alias/x", awskms.Options{LoadOptions: isolated(t)})
	require.NoError(t, err, "the SDK default chain supplies the region")
	require.NoError(t, b.Close())
}

func TestOpenRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		uri  string
		opts awskms.Options
	}{
		"bad uri":           {"awskms://", awskms.Options{}},
		"other scheme":      {"local:///tmp/k", awskms.Options{}},
		"negative timeout":  {"awskms://alias/x?region=us-east-1", awskms.Options{Timeout: -time.Second}},
		"negative attempts": {"awskms://alias/x?region=us-east-1", awskms.Options{MaxAttempts: -1}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := awskms.Open(context.Background(), tc.uri, tc.opts)
			require.ErrorIs(t, err, kms.ErrConfig)
		})
	}
}

func TestWrapChecksInputsAndClose(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{})
	key := s.CreateKey(t)
	b := open(t, uriFor(s, key.ID), awskms.Options{})
	ctx := context.Background()
	_, err := b.Wrap(ctx, make([]byte, 16), nil)
	require.Error(t, err)
	_, err = b.Unwrap(ctx, kms.WrappedKey{KEKID: b.ID()}, nil)
	require.ErrorIs(t, err, kms.ErrDecrypt)
	require.Zero(t, s.Calls("Encrypt")+s.Calls("Decrypt"), "refused before any KMS call")

	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "Close is idempotent")
	_, err = b.Wrap(ctx, dek(t), nil)
	require.Error(t, err)
	require.Error(t, b.Ping(ctx))
}

// stub is a KMSAPI that fails every call with err (or blocks until the deadline).
type stub struct{ err error }

func (s stub) Encrypt(ctx context.Context, _ *kmssdk.EncryptInput, _ ...func(*kmssdk.Options)) (*kmssdk.EncryptOutput, error) {
	return nil, s.wait(ctx)
}

func (s stub) Decrypt(ctx context.Context, _ *kmssdk.DecryptInput, _ ...func(*kmssdk.Options)) (*kmssdk.DecryptOutput, error) {
	return nil, s.wait(ctx)
}

func (s stub) wait(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		err  error
		want error
	}{
		{&types.InvalidCiphertextException{}, kms.ErrDecrypt},
		{&types.IncorrectKeyException{}, kms.ErrDecrypt},
		{&types.DisabledException{}, kms.ErrUnavailable},
		{&types.NotFoundException{}, kms.ErrUnavailable},
		{&types.KMSInvalidStateException{}, kms.ErrUnavailable},
		{&types.KeyUnavailableException{}, kms.ErrUnavailable},
		{&types.KMSInternalException{}, kms.ErrUnavailable},
		{&types.DependencyTimeoutException{}, kms.ErrUnavailable},
		{&types.LimitExceededException{}, kms.ErrUnavailable},
		{context.DeadlineExceeded, kms.ErrUnavailable},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, kms.ErrUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.err.Error(), func(t *testing.T) {
			b, err := awskms.New(stub{tc.err}, "alias/x")
			require.NoError(t, err)
			_, err = b.Unwrap(context.Background(), kms.WrappedKey{KEKID: b.ID(), Ciphertext: []byte{1}}, nil)
			require.ErrorIs(t, err, tc.want)
			require.ErrorIs(t, err, tc.err, "the SDK error stays in the chain")
			_, err = b.Wrap(context.Background(), make([]byte, kms.DEKSize), nil)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestNew(t *testing.T) {
	_, err := awskms.New(nil, "alias/x")
	require.ErrorIs(t, err, kms.ErrConfig)
	_, err = awskms.New(stub{}, "not a key")
	require.ErrorIs(t, err, kms.ErrConfig)
	_, err = awskms.New(stub{}, "alias/x", awskms.WithTimeout(0))
	require.ErrorIs(t, err, kms.ErrConfig)

	b, err := awskms.New(stub{}, "alias/x", awskms.WithTimeout(50*time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, "awskms:alias/x", b.ID())
	start := time.Now()
	err = b.Ping(context.Background())
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), time.Second)
}

// TestRealAWSKMS runs the conformance suite against real AWS KMS when
// AUTHPIPE_TEST_AWSKMS_URI names a key (credentials from the SDK default chain).
func TestRealAWSKMS(t *testing.T) {
	uri := os.Getenv("AUTHPIPE_TEST_AWSKMS_URI")
	if uri == "" {
		t.Skip("AUTHPIPE_TEST_AWSKMS_URI is not set: NOT testing against real AWS KMS (the fake endpoint tests above still ran)")
	}
	kmstest.Run(t, func(t *testing.T) kms.KEK {
		b, err := awskms.Open(context.Background(), uri, awskms.Options{})
		require.NoError(t, err)
		return b
	})
}

// TestDefaultCredentialChain opens with no credentials option: the SDK's default chain
// finds them (here in the environment; IRSA's web identity token works the same way).
func TestDefaultCredentialChain(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{})
	key := s.CreateKey(t)
	empty := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("AWS_ACCESS_KEY_ID", awskmstest.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", awskmstest.SecretAccessKey)
	b, err := awskms.Open(context.Background(), "awskms://"+key.ARN+"?endpoint="+s.URL, awskms.Options{})
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.Ping(context.Background()))
	require.Zero(t, s.Rejected())
}

package awskmstest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms/awskms/awskmstest"
)

// client is the real SDK client, pointed at the fake, without retries so that every
// injected failure is seen.
func client(s *awskmstest.Server, creds aws.CredentialsProvider) *kmssdk.Client {
	return kmssdk.New(kmssdk.Options{
		Region:       s.Region(),
		BaseEndpoint: aws.String(s.URL),
		Credentials:  creds,
		Retryer:      aws.NopRetryer{},
	})
}

func apiCode(t *testing.T, err error) string {
	t.Helper()
	var api smithy.APIError
	require.ErrorAs(t, err, &api)
	return api.ErrorCode()
}

func TestRoundTripAndContext(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{})
	k := s.CreateKey(t)
	c := client(s, awskmstest.Credentials())
	ctx := context.Background()
	ec := map[string]string{"a": "1", "b": "2"}

	enc, err := c.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: aws.String(k.ID), Plaintext: []byte("dek"), EncryptionContext: ec})
	require.NoError(t, err)
	require.Equal(t, k.ARN, aws.ToString(enc.KeyId))
	require.NotContains(t, string(enc.CiphertextBlob), "dek")

	dec, err := c.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec})
	require.NoError(t, err, "decrypt without KeyId finds the key in the blob")
	require.Equal(t, []byte("dek"), dec.Plaintext)
	require.Equal(t, k.ARN, aws.ToString(dec.KeyId))

	for name, bad := range map[string]map[string]string{
		"missing":     nil,
		"other value": {"a": "1", "b": "3"},
		"extra entry": {"a": "1", "b": "2", "c": "3"},
		"swapped":     {"a": "2", "b": "1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: aws.String(k.ID), CiphertextBlob: enc.CiphertextBlob, EncryptionContext: bad})
			var invalid *types.InvalidCiphertextException
			require.ErrorAs(t, err, &invalid)
			var re interface{ HTTPStatusCode() int }
			require.ErrorAs(t, err, &re)
			require.Equal(t, http.StatusBadRequest, re.HTTPStatusCode())
		})
	}

	other := s.CreateKey(t)
	_, err = c.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: aws.String(other.ID), CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec})
	var incorrect *types.IncorrectKeyException
	require.ErrorAs(t, err, &incorrect, "a blob made under another key")
}

func TestKeyReferences(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{Region: "eu-west-3"})
	k := s.CreateKey(t)
	s.CreateAlias("alias/authpipe/test", k.ID)
	c := client(s, awskmstest.Credentials())
	for _, ref := range []string{k.ID, k.ARN, "alias/authpipe/test", s.AliasARN("alias/authpipe/test")} {
		t.Run(ref, func(t *testing.T) {
			out, err := c.DescribeKey(context.Background(), &kmssdk.DescribeKeyInput{KeyId: aws.String(ref)})
			require.NoError(t, err)
			require.Equal(t, k.ARN, aws.ToString(out.KeyMetadata.Arn))
			require.True(t, out.KeyMetadata.Enabled)
			require.Equal(t, types.KeyStateEnabled, out.KeyMetadata.KeyState)
			require.Equal(t, types.KeyUsageTypeEncryptDecrypt, out.KeyMetadata.KeyUsage)
			require.False(t, aws.ToTime(out.KeyMetadata.CreationDate).IsZero())
		})
	}
	for _, ref := range []string{"alias/none", "arn:aws:kms:us-east-1:111122223333:key/" + k.ID, "00000000-0000-0000-0000-000000000000"} {
		_, err := c.DescribeKey(context.Background(), &kmssdk.DescribeKeyInput{KeyId: aws.String(ref)})
		require.Equal(t, "NotFoundException", apiCode(t, err), ref)
	}
}

func TestDisabledKey(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{})
	k := s.CreateKey(t)
	c := client(s, awskmstest.Credentials())
	ctx := context.Background()
	enc, err := c.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: aws.String(k.ID), Plaintext: []byte{1}})
	require.NoError(t, err)

	s.SetEnabled(k.ID, false)
	_, err = c.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: aws.String(k.ID), Plaintext: []byte{1}})
	var disabled *types.DisabledException
	require.ErrorAs(t, err, &disabled)
	_, err = c.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: aws.String(k.ID), CiphertextBlob: enc.CiphertextBlob})
	require.ErrorAs(t, err, &disabled)
	out, err := c.DescribeKey(ctx, &kmssdk.DescribeKeyInput{KeyId: aws.String(k.ID)})
	require.NoError(t, err)
	require.Equal(t, types.KeyStateDisabled, out.KeyMetadata.KeyState)

	s.SetEnabled(k.ID, true)
	_, err = c.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: aws.String(k.ID), CiphertextBlob: enc.CiphertextBlob})
	require.NoError(t, err)
}

func TestInjectedFailuresAndCounters(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{})
	k := s.CreateKey(t)
	c := client(s, awskmstest.Credentials())
	ctx := context.Background()
	s.Throttle(2)
	s.FailNext(1, http.StatusInternalServerError, "KMSInternalException")
	in := &kmssdk.EncryptInput{KeyId: aws.String(k.ID), Plaintext: []byte{1}}
	for _, want := range []string{"ThrottlingException", "ThrottlingException", "KMSInternalException"} {
		_, err := c.Encrypt(ctx, in)
		require.Equal(t, want, apiCode(t, err))
	}
	_, err := c.Encrypt(ctx, in)
	require.NoError(t, err)
	require.Equal(t, 4, s.Calls("Encrypt"))
	require.Equal(t, 0, s.Calls("Decrypt"))

	// The SDK's own classification agrees with KMS's: throttling and 500 are retryable.
	s.Throttle(1)
	_, err = c.Encrypt(ctx, in)
	require.True(t, isRetryable(err), "ThrottlingException is retryable for the SDK")
	s.FailNext(1, http.StatusInternalServerError, "KMSInternalException")
	_, err = c.Encrypt(ctx, in)
	require.True(t, isRetryable(err), "a 500 is retryable for the SDK")
	_, err = c.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: aws.String(k.ID), CiphertextBlob: []byte{9, 9, 9}})
	require.Equal(t, "InvalidCiphertextException", apiCode(t, err))
	require.False(t, isRetryable(err), "a bad ciphertext is not retried")
}

func isRetryable(err error) bool {
	for _, r := range retry.DefaultRetryables {
		if r.IsErrorRetryable(err) == aws.TrueTernary {
			return true
		}
	}
	return false
}

func TestGenerateRandom(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{})
	c := client(s, awskmstest.Credentials())
	out, err := c.GenerateRandom(context.Background(), &kmssdk.GenerateRandomInput{NumberOfBytes: aws.Int32(32)})
	require.NoError(t, err)
	require.Len(t, out.Plaintext, 32)
	require.Equal(t, 1, s.Calls("GenerateRandom"))
}

func TestSigV4IsVerified(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{})
	k := s.CreateKey(t)
	in := &kmssdk.EncryptInput{KeyId: aws.String(k.ID), Plaintext: []byte{1}}

	_, err := client(s, awskmstest.Credentials()).Encrypt(context.Background(), in)
	require.NoError(t, err)
	require.Equal(t, 0, s.Rejected())

	wrongSecret := credentials.NewStaticCredentialsProvider(awskmstest.AccessKeyID, "not-the-secret", "")
	_, err = client(s, wrongSecret).Encrypt(context.Background(), in)
	require.Equal(t, "InvalidSignatureException", apiCode(t, err))

	unknown := credentials.NewStaticCredentialsProvider("AKIDUNKNOWN", awskmstest.SecretAccessKey, "")
	_, err = client(s, unknown).Encrypt(context.Background(), in)
	require.Equal(t, "UnrecognizedClientException", apiCode(t, err))

	otherRegion := kmssdk.New(kmssdk.Options{Region: "us-west-2", BaseEndpoint: aws.String(s.URL), Credentials: awskmstest.Credentials(), Retryer: aws.NopRetryer{}})
	_, err = otherRegion.Encrypt(context.Background(), in)
	require.Equal(t, "InvalidSignatureException", apiCode(t, err))

	// An unsigned request, as a plain HTTP client would send it.
	req, err := http.NewRequest(http.MethodPost, s.URL, strings.NewReader(`{"KeyId":"`+k.ID+`","Plaintext":"AQ=="}`))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", "TrentService.Encrypt")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, 4, s.Rejected())
}

func TestUnknownOperation(t *testing.T) {
	s := awskmstest.NewServer(t, awskmstest.Config{})
	_, err := client(s, awskmstest.Credentials()).ListKeys(context.Background(), &kmssdk.ListKeysInput{})
	require.Equal(t, "UnknownOperationException", apiCode(t, err))
	require.False(t, errors.Is(err, context.DeadlineExceeded))
}

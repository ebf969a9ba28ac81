//go:build !cgo

package pkcs11

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
)

func TestWithoutCgoOpenFailsClearly(t *testing.T) {
	uri := "pkcs11:token=a;object=b?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=5678"
	b, err := Open(context.Background(), uri, Options{})
	require.Nil(t, b)
	require.ErrorIs(t, err, kms.ErrConfig)
	require.ErrorContains(t, err, "built without cgo: PKCS#11 unavailable")
	require.NotContains(t, err.Error(), "5678")

	_, err = Open(context.Background(), "pkcs11:object=b", Options{})
	require.ErrorContains(t, err, "built without cgo")
	require.ErrorContains(t, err, "token=<label> is required")

	err = GenerateKey(context.Background(), uri)
	require.ErrorIs(t, err, kms.ErrConfig)
	require.ErrorContains(t, err, "built without cgo")
}

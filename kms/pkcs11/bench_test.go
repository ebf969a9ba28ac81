//go:build cgo

package pkcs11

import (
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
)

// BenchmarkWrapUnwrap measures one Wrap plus one Unwrap of a 256-bit DEK against SoftHSM2,
// serially and from parallel goroutines (which share the backend's session pool).
func BenchmarkWrapUnwrap(b *testing.B) {
	uri := newKey(b, testToken)
	k := openKEK(b, uri)
	ctx := testCtx(b)
	dek, aad := make([]byte, kms.DEKSize), []byte("ws_bench|credentials")
	_, err := rand.Read(dek)
	require.NoError(b, err)

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w, err := k.Wrap(ctx, dek, aad)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := k.Unwrap(ctx, w, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w, err := k.Wrap(ctx, dek, aad)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := k.Unwrap(ctx, w, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

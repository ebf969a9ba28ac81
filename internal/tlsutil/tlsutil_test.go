package tlsutil

import (
	"crypto/tls"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseTLSVersion(t *testing.T) {
	for in, want := range map[string]uint16{"": tls.VersionTLS13, "1.3": tls.VersionTLS13, "1.2": tls.VersionTLS12} {
		got, err := ParseTLSVersion(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	for _, in := range []string{"1.1", "1.0", "tls1.2", "1.4"} {
		_, err := ParseTLSVersion(in)
		require.Error(t, err, in)
	}
}

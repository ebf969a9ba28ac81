package outbound

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/tlsutil"
)

func TestTLSMinimumVersion(t *testing.T) {
	pki := newTestPKI(t)
	tls12 := newTLSServer(t, pki, tls.VersionTLS12)
	tls13 := newTLSServer(t, pki, 0)

	def := newClient(t, Policy{AllowCIDRs: loopbackAllow, RootCAs: pki.pool})
	resp, err := get(t, def.TokenClient(), tls13.URL)
	require.NoError(t, err)
	require.Equal(t, uint16(tls.VersionTLS13), resp.TLS.Version)

	_, err = get(t, def.TokenClient(), tls12.URL)
	require.ErrorContains(t, err, "protocol version", "a TLS 1.2-only server is refused by default")
	require.Zero(t, tls12.hits.Load())

	v, err := tlsutil.ParseTLSVersion("1.2")
	require.NoError(t, err)
	legacy := newClient(t, Policy{AllowCIDRs: loopbackAllow, RootCAs: pki.pool, MinTLSVersion: v})
	resp, err = get(t, legacy.TokenClient(), tls12.URL)
	require.NoError(t, err, "accepted with the 1.2 escape hatch")
	require.Equal(t, uint16(tls.VersionTLS12), resp.TLS.Version)
	require.EqualValues(t, 1, tls12.hits.Load())
}

func TestTLSVerifiesChain(t *testing.T) {
	pki := newTestPKI(t)
	srv := newTLSServer(t, pki, 0)
	// System roots do not know the test CA; a matching pin must not rescue the chain.
	c := newClient(t, Policy{AllowCIDRs: loopbackAllow, Pins: []string{SPKIPin(pki.leafCert)}})
	_, err := get(t, c.TokenClient(), srv.URL)
	var verr *tls.CertificateVerificationError
	require.ErrorAs(t, err, &verr)
	require.NotErrorIs(t, err, ErrPinMismatch)
	require.Zero(t, srv.hits.Load())
}

func TestTLSPins(t *testing.T) {
	pki := newTestPKI(t)
	other := newTestPKI(t)
	srv := newTLSServer(t, pki, 0)
	wrong := SPKIPin(other.leafCert)

	tests := []struct {
		name string
		pins []string
		ok   bool
	}{
		{"leaf", []string{SPKIPin(pki.leafCert)}, true},
		{"ca", []string{SPKIPin(pki.caCert)}, true},
		{"rotation old+new", []string{wrong, SPKIPin(pki.leafCert)}, true},
		{"rotation new+old", []string{SPKIPin(pki.leafCert), wrong}, true},
		{"wrong", []string{wrong}, false},
		{"wrong twice", []string{wrong, SPKIPin(other.caCert)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mismatches atomic.Int32
			c := newClient(t, Policy{AllowCIDRs: loopbackAllow, RootCAs: pki.pool, Pins: tc.pins},
				WithMetrics(func(e Event) {
					if e.Kind == EventPinMismatch {
						mismatches.Add(1)
					}
				}))
			hits, conns := srv.hits.Load(), srv.conns.Load()
			resp, err := get(t, c.ControlPlaneClient(), srv.URL+"/v1/config")
			if tc.ok {
				require.NoError(t, err)
				require.Equal(t, 200, resp.StatusCode)
				require.Zero(t, mismatches.Load())
				return
			}
			require.ErrorIs(t, err, ErrPinMismatch)
			require.True(t, IsPermanent(err))
			require.Equal(t, hits, srv.hits.Load(), "no request reached the handler")
			require.Eventually(t, func() bool { return srv.conns.Load() == conns+1 }, 2*time.Second, 10*time.Millisecond)
			time.Sleep(50 * time.Millisecond)
			require.Equal(t, conns+1, srv.conns.Load(), "one handshake, not retried")
			require.EqualValues(t, 1, mismatches.Load())
		})
	}

	t.Run("pinned client refuses plain http", func(t *testing.T) {
		plain := newCountingServer(t, nil)
		c := newClient(t, Policy{AllowCIDRs: loopbackAllow, RootCAs: pki.pool, Pins: []string{SPKIPin(pki.leafCert)}})
		_, err := get(t, c.ControlPlaneClient(), plain.URL)
		require.ErrorIs(t, err, ErrUnsafeURL)
		require.Zero(t, plain.hits.Load())
	})
}

func TestSPKIPinFormat(t *testing.T) {
	pki := newTestPKI(t)
	pin := SPKIPin(pki.leafCert)
	require.Regexp(t, `^sha256/[A-Za-z0-9+/]{43}=$`, pin)
	require.NotEqual(t, pin, SPKIPin(pki.caCert))
	set, err := parsePins([]string{pin})
	require.NoError(t, err)
	require.Len(t, set, 1)
}

func TestLoadCABundle(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pki.caCert.Raw}), 0o600))

	pool, err := LoadCABundle(bundle)
	require.NoError(t, err)
	srv := newTLSServer(t, pki, 0)
	c := newClient(t, Policy{AllowCIDRs: loopbackAllow, RootCAs: pool})
	resp, err := get(t, c.TokenClient(), srv.URL)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)

	sys, err := x509.SystemCertPool()
	require.NoError(t, err)
	require.False(t, pool.Equal(sys), "the bundle adds to the system roots")

	empty := filepath.Join(dir, "empty.pem")
	require.NoError(t, os.WriteFile(empty, []byte("not a certificate"), 0o600))
	_, err = LoadCABundle(empty)
	require.Error(t, err)
	_, err = LoadCABundle(filepath.Join(dir, "missing.pem"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

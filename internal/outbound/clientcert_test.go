package outbound

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
)

// mtlsServer asks for a client certificate (without verifying it: that is the OAuth
// layer's job) and records the subject of the last one presented.
type mtlsServer struct {
	*httptest.Server
	mu   sync.Mutex
	last string
	hits int
}

func newMTLSServer(t *testing.T, pki *testPKI, cfg func(*tls.Config)) *mtlsServer {
	t.Helper()
	s := &mtlsServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hits++
		s.last = ""
		if len(r.TLS.PeerCertificates) > 0 {
			s.last = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{pki.leaf}, ClientAuth: tls.RequestClientCert}
	if cfg != nil {
		cfg(s.TLS)
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *mtlsServer) peer() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.hits
}

// TestWithClientCertificate: the certificate-carrying variant of a token client presents
// the certificate, and keeps everything else of the client: the address policy, the TLS
// floor, the pins, https only, no redirects. The client it came from never presents it,
// not even over a connection the variant opened.
func TestWithClientCertificate(t *testing.T) {
	pki := newTestPKI(t)
	cert := tlstest.NewCA(t, "client CA").Client(t, "adp-client").TLS
	srv := newMTLSServer(t, pki, nil)
	base := newClient(t, Policy{AllowCIDRs: loopbackAllow, RootCAs: pki.pool})
	hc := base.TokenClient()

	mc, err := WithClientCertificate(hc, cert)
	require.NoError(t, err)
	for range 2 {
		_, err = get(t, mc, srv.URL)
		require.NoError(t, err)
		name, _ := srv.peer()
		require.Equal(t, "adp-client", name)
		_, err = get(t, hc, srv.URL)
		require.NoError(t, err)
		name, _ = srv.peer()
		require.Empty(t, name, "the shared client presents nothing")
	}

	t.Run("presented whatever CA names the server lists", func(t *testing.T) {
		other := newMTLSServer(t, pki, func(c *tls.Config) { c.ClientCAs = newTestPKI(t).pool })
		_, err := get(t, mc, other.URL)
		require.NoError(t, err)
		name, _ := other.peer()
		require.Equal(t, "adp-client", name)
	})
	t.Run("no redirects", func(t *testing.T) {
		res, err := get(t, mc, srv.URL+"/redirect")
		require.NoError(t, err)
		require.Equal(t, http.StatusFound, res.StatusCode)
		_, hits := srv.peer()
		_, err = get(t, mc, srv.URL+"/redirect")
		require.NoError(t, err)
		_, after := srv.peer()
		require.Equal(t, hits+1, after)
	})
	t.Run("plain http", func(t *testing.T) {
		plain := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(plain.Close)
		_, err := get(t, mc, plain.URL)
		require.ErrorIs(t, err, ErrUnsafeURL)
		tc, err := WithClientCertificate(plain.Client(), cert) // a plain transport (tests)
		require.NoError(t, err)
		_, err = get(t, tc, plain.URL)
		require.ErrorIs(t, err, ErrUnsafeURL)
	})
	t.Run("address policy", func(t *testing.T) {
		c, err := WithClientCertificate(newClient(t, Policy{RootCAs: pki.pool}).TokenClient(), cert)
		require.NoError(t, err)
		_, hits := srv.peer()
		_, err = get(t, c, srv.URL)
		require.ErrorIs(t, err, ErrUnsafeURL)
		_, after := srv.peer()
		require.Equal(t, hits, after)
	})
	t.Run("TLS floor", func(t *testing.T) {
		old := newMTLSServer(t, pki, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })
		_, err := get(t, mc, old.URL)
		require.ErrorContains(t, err, "protocol version")
	})
	t.Run("pins", func(t *testing.T) {
		pinned := newClient(t, Policy{AllowCIDRs: loopbackAllow, RootCAs: pki.pool, Pins: []string{SPKIPin(newTestPKI(t).leafCert)}})
		c, err := WithClientCertificate(pinned.TokenClient(), cert)
		require.NoError(t, err)
		_, err = get(t, c, srv.URL)
		require.ErrorIs(t, err, ErrPinMismatch)
	})
	t.Run("other transports", func(t *testing.T) {
		_, err := WithClientCertificate(&http.Client{Transport: http.NewFileTransport(http.Dir("."))}, cert)
		require.ErrorIs(t, err, ErrNoClientCertTransport)
		_, err = WithClientCertificate(nil, cert)
		require.ErrorIs(t, err, ErrNoClientCertTransport)
		_, err = WithClientCertificate(hc, tls.Certificate{})
		require.Error(t, err)
	})
}

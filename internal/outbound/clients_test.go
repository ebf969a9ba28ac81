package outbound_test

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
)

// provider is a TLS server standing in for a provider, counting TCP connections so a
// test can show that a refused connection is not retried.
type provider struct {
	*httptest.Server
	conns atomic.Int32
	mu    sync.Mutex
	leaf  *tlstest.Leaf
}

func newProvider(t *testing.T, leaf *tlstest.Leaf, maxVersion uint16) *provider {
	t.Helper()
	p := &provider{leaf: leaf}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	p.Config.ErrorLog = log.New(io.Discard, "", 0)
	p.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			p.conns.Add(1)
		}
	}
	// GetConfigForClient runs on every handshake (httptest would otherwise serve its own
	// certificate to clients that send no SNI).
	p.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return &tls.Config{MaxVersion: maxVersion, Certificates: []tls.Certificate{p.leaf.TLS}}, nil
	}}
	p.StartTLS()
	t.Cleanup(p.Close)
	return p
}

// rotate makes the server present another key from now on.
func (p *provider) rotate(l *tlstest.Leaf) { p.mu.Lock(); p.leaf = l; p.mu.Unlock() }

func newClients(t *testing.T, ca *tlstest.CA, events *[]outbound.Event) *outbound.Clients {
	t.Helper()
	var mu sync.Mutex
	c, err := outbound.NewClients(outbound.Policy{
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		RootCAs:    ca.Pool(),
	}, outbound.WithMetrics(func(e outbound.Event) { mu.Lock(); *events = append(*events, e); mu.Unlock() }))
	require.NoError(t, err)
	return c
}

func get(t *testing.T, c *outbound.Clients, minTLS string, pins []string, url string) error {
	t.Helper()
	cl, err := c.For(minTLS, pins)
	require.NoError(t, err)
	resp, err := cl.TokenClient().Get(url)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return nil
}

func TestTLS12ServerRefusedByDefault(t *testing.T) {
	ca := tlstest.NewCA(t, "provider CA")
	srv := newProvider(t, ca.Server(t), tls.VersionTLS12)
	var events []outbound.Event
	c := newClients(t, ca, &events)

	for _, v := range []string{"", "1.3"} {
		err := get(t, c, v, nil, srv.URL)
		require.Error(t, err, "min_tls_version %q must refuse a TLS 1.2-only server", v)
		require.Contains(t, err.Error(), "protocol version")
	}
	require.NoError(t, get(t, c, "1.2", nil, srv.URL), "the escape hatch reaches it")

	modern := newProvider(t, ca.Server(t), 0)
	require.NoError(t, get(t, c, "", nil, modern.URL))

	_, err := c.For("1.1", nil)
	require.Error(t, err)
}

func TestPinnedProvider(t *testing.T) {
	ca := tlstest.NewCA(t, "provider CA")
	oldKey, newKey, stranger := ca.Server(t), ca.Server(t), ca.Server(t)
	srv := newProvider(t, oldKey, 0)
	var events []outbound.Event
	c := newClients(t, ca, &events)

	t.Run("wrong key refused, reported, not retried", func(t *testing.T) {
		before := srv.conns.Load()
		err := get(t, c, "", []string{stranger.Pin()}, srv.URL)
		require.ErrorIs(t, err, outbound.ErrPinMismatch)
		require.True(t, outbound.IsPermanent(err))
		require.Contains(t, err.Error(), "pin")
		require.Equal(t, int32(1), srv.conns.Load()-before, "one attempt, no retry without pins")
		require.NotEmpty(t, events)
		require.Equal(t, outbound.EventPinMismatch, events[len(events)-1].Kind)
	})
	t.Run("pinned key accepted", func(t *testing.T) {
		require.NoError(t, get(t, c, "", []string{oldKey.Pin()}, srv.URL))
	})
	t.Run("pinned with TLS 1.2 escape hatch still checks pins", func(t *testing.T) {
		require.ErrorIs(t, get(t, c, "1.2", []string{stranger.Pin()}, srv.URL), outbound.ErrPinMismatch)
	})
	t.Run("rotation: old and new listed together survive the key change", func(t *testing.T) {
		both := []string{oldKey.Pin(), newKey.Pin()}
		require.NoError(t, get(t, c, "", both, srv.URL))
		srv.rotate(newKey)
		c.CloseIdleConnections()
		require.NoError(t, get(t, c, "", both, srv.URL))
		require.ErrorIs(t, get(t, c, "", []string{oldKey.Pin()}, srv.URL), outbound.ErrPinMismatch,
			"a list without the new key fails once the server rotates")
	})
	t.Run("CA pin covers every leaf it issues", func(t *testing.T) {
		require.NoError(t, get(t, c, "", []string{tlstest.Pin(ca.Cert)}, srv.URL))
	})
	t.Run("pinned client refuses plain http", func(t *testing.T) {
		plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		defer plain.Close()
		require.Error(t, get(t, c, "", []string{oldKey.Pin()}, plain.URL))
	})
}

func TestClientsCacheByPolicy(t *testing.T) {
	ca := tlstest.NewCA(t, "provider CA")
	var events []outbound.Event
	c := newClients(t, ca, &events)
	a, b := ca.Server(t).Pin(), ca.Server(t).Pin()

	x, err := c.For("", []string{a, b})
	require.NoError(t, err)
	y, err := c.For("1.3", []string{b, a})
	require.NoError(t, err)
	require.Same(t, x, y, "same version and pin set: one client (one pool)")
	z, err := c.For("1.2", []string{a, b})
	require.NoError(t, err)
	require.NotSame(t, x, z)
	d1, err := c.For("", nil)
	require.NoError(t, err)
	require.NotSame(t, x, d1)
}

func TestValidatePins(t *testing.T) {
	good := tlstest.Pin(tlstest.NewCA(t, "x").Cert)
	tests := []struct {
		name string
		pins []string
		ok   bool
	}{
		{"none", nil, true},
		{"one", []string{good}, true},
		{"no prefix", []string{good[len("sha256/"):]}, false},
		{"sha1", []string{"sha1/AAAAAAAAAAAAAAAAAAAAAAAAAAA="}, false},
		{"short", []string{"sha256/AAAA"}, false},
		{"url-safe base64", []string{"sha256/" + "_-" + good[len("sha256/")+2:]}, false},
		{"too many", []string{good, good, good, good, good, good, good, good, good}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tlsutil.ValidatePins(tc.pins)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

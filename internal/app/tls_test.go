package app

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// serveTLS serves a handler that reports the client certificate it saw, over a listener
// built exactly as Serve builds it, and returns the address.
func serveTLS(t *testing.T, files *tlsFiles) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case len(r.TLS.VerifiedChains) > 0:
				fmt.Fprintf(w, "verified %s", r.TLS.VerifiedChains[0][0].Subject.CommonName)
			case len(r.TLS.PeerCertificates) > 0:
				fmt.Fprint(w, "UNVERIFIED") // must never happen
			default:
				fmt.Fprint(w, "anonymous")
			}
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // handshake failures are the point of these tests
	}
	go func() { _ = srv.Serve(tls.NewListener(ln, files.serverConfig())) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// httpsClient trusts roots; with a certificate it always sends it, whatever CAs the
// server asks for (Go's client would otherwise send none that does not match).
func httpsClient(roots *x509.CertPool, maxVersion uint16, certs ...tls.Certificate) *http.Client {
	conf := &tls.Config{RootCAs: roots, MaxVersion: maxVersion}
	if len(certs) > 0 {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   conf,
		DisableKeepAlives: true, // every request a new handshake
		ForceAttemptHTTP2: true,
	}}
}

func getBody(c *http.Client, addr string) (string, *tls.ConnectionState, error) {
	resp, err := c.Get("https://localhost:" + port(addr) + "/")
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.TLS, err
}

func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

func newFiles(t *testing.T, leaf *tlstest.Leaf, clientCA *tlstest.CA) (*tlsFiles, string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := leaf.WriteFiles(t, dir, "tls")
	caFile := ""
	if clientCA != nil {
		caFile = clientCA.WriteFile(t, dir, "client-ca")
	}
	files, err := newTLSFiles(certFile, keyFile, caFile, nil)
	require.NoError(t, err)
	return files, dir
}

func TestInboundTLS13Only(t *testing.T) {
	ca := tlstest.NewCA(t, "inbound CA")
	files, _ := newFiles(t, ca.Server(t), nil)
	addr := serveTLS(t, files)

	body, cs, err := getBody(httpsClient(ca.Pool(), 0), addr)
	require.NoError(t, err)
	require.Equal(t, "anonymous", body)
	require.Equal(t, uint16(tls.VersionTLS13), cs.Version)
	require.Equal(t, "h2", cs.NegotiatedProtocol)

	_, _, err = getBody(httpsClient(ca.Pool(), tls.VersionTLS12), addr)
	require.Error(t, err, "a TLS 1.2-only client must be refused")
	require.Contains(t, err.Error(), "protocol version")
}

func TestInboundReloadSwapsCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "inbound CA")
	first, second := ca.Server(t), ca.Server(t)
	var logs bytes.Buffer
	dir := t.TempDir()
	certFile, keyFile := first.WriteFiles(t, dir, "tls")
	files, err := newTLSFiles(certFile, keyFile, "", slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	now := time.Now()
	files.now = func() time.Time { return now }
	addr := serveTLS(t, files)
	client := httpsClient(ca.Pool(), 0)

	served := func() *x509.Certificate {
		t.Helper()
		_, cs, err := getBody(client, addr)
		require.NoError(t, err)
		return cs.PeerCertificates[0]
	}
	require.Equal(t, first.Cert.SerialNumber, served().SerialNumber)

	// Kubernetes-style rotation: the new pair appears in place.
	second.WriteFiles(t, dir, "tls")
	require.Equal(t, first.Cert.SerialNumber, served().SerialNumber, "not re-read before the check interval")
	now = now.Add(tlsCheckInterval)
	require.Equal(t, second.Cert.SerialNumber, served().SerialNumber, "the new certificate is served without a restart")
	require.Contains(t, logs.String(), "TLS certificate reloaded")

	// A half-written rotation (new certificate, old key) is ignored: keep serving.
	third := ca.Server(t)
	require.NoError(t, os.WriteFile(certFile, third.CertPEM, 0o600))
	now = now.Add(tlsCheckInterval)
	require.Equal(t, second.Cert.SerialNumber, served().SerialNumber)
	require.Contains(t, logs.String(), "do not load")
	require.NotContains(t, logs.String(), "PRIVATE KEY")

	// ...until the key arrives too.
	require.NoError(t, os.WriteFile(keyFile, third.KeyPEM, 0o600))
	now = now.Add(tlsCheckInterval)
	require.Equal(t, third.Cert.SerialNumber, served().SerialNumber)

	// A removed file keeps the last good certificate.
	require.NoError(t, os.Remove(certFile))
	now = now.Add(tlsCheckInterval)
	require.Equal(t, third.Cert.SerialNumber, served().SerialNumber)
}

func TestInboundClientCertificates(t *testing.T) {
	serverCA, clientCA, otherCA := tlstest.NewCA(t, "server CA"), tlstest.NewCA(t, "client CA"), tlstest.NewCA(t, "other CA")
	files, _ := newFiles(t, serverCA.Server(t), clientCA)
	addr := serveTLS(t, files)

	tests := []struct {
		name    string
		certs   []tls.Certificate
		want    string
		refused bool
	}{
		{"no certificate: browsers and probes still connect", nil, "anonymous", false},
		{"certificate from the client CA", []tls.Certificate{clientCA.Client(t, "app-1", "authpipe:apikey:apk_1").TLS}, "verified app-1", false},
		{"certificate from another CA", []tls.Certificate{otherCA.Client(t, "mallory").TLS}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, _, err := getBody(httpsClient(serverCA.Pool(), 0, tc.certs...), addr)
			if tc.refused {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, body)
		})
	}
}

func TestNewTLSFilesRefusesBadFiles(t *testing.T) {
	ca := tlstest.NewCA(t, "inbound CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t).WriteFiles(t, dir, "tls")
	_, otherKey := ca.Server(t).WriteFiles(t, dir, "other")
	empty := filepath.Join(dir, "empty.pem")
	require.NoError(t, os.WriteFile(empty, []byte("no pem here"), 0o600))

	tests := []struct {
		name                string
		cert, key, clientCA string
	}{
		{"missing certificate", filepath.Join(dir, "nope.crt"), keyFile, ""},
		{"key of another certificate", certFile, otherKey, ""},
		{"client CA without a certificate", certFile, keyFile, empty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newTLSFiles(tc.cert, tc.key, tc.clientCA, nil)
			require.Error(t, err)
			require.NotContains(t, err.Error(), "PRIVATE KEY")
		})
	}
}

func TestOutboundPolicyTrustsExtraCA(t *testing.T) {
	corp := tlstest.NewCA(t, "corporate CA")
	files, dir := newFiles(t, corp.Server(t), nil)
	addr := serveTLS(t, files)
	cfg := config.Config{OutboundAllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	url := "https://127.0.0.1:" + port(addr) + "/"

	p, err := OutboundPolicy(cfg)
	require.NoError(t, err)
	c, err := outbound.New(p)
	require.NoError(t, err)
	_, err = c.TokenClient().Get(url)
	require.Error(t, err, "system roots alone do not trust the corporate CA")

	cfg.OutboundCAFile = corp.WriteFile(t, dir, "corp")
	p, err = OutboundPolicy(cfg)
	require.NoError(t, err)
	c, err = outbound.New(p)
	require.NoError(t, err)
	resp, err := c.TokenClient().Get(url)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_ = resp.Body.Close()

	cfg.OutboundCAFile = filepath.Join(dir, "missing.pem")
	_, err = OutboundPolicy(cfg)
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, config.EnvOutboundCAFile, ce.Var)

	cfg.ControlPlanePins = []string{corp.Server(t).Pin()}
	_, err = ControlPlanePolicy(cfg)
	require.Error(t, err, "the CA file error surfaces for the control plane too")
}

func TestControlPlanePolicyPins(t *testing.T) {
	ca := tlstest.NewCA(t, "control plane CA")
	leaf := ca.Server(t)
	files, dir := newFiles(t, leaf, nil)
	addr := serveTLS(t, files)
	url := "https://127.0.0.1:" + port(addr) + "/"
	other := ca.Server(t)
	base := config.Config{OutboundAllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		OutboundCAFile: ca.WriteFile(t, dir, "ca")}

	tests := []struct {
		name string
		pins []string
		ok   bool
	}{
		{"wrong pin refused", []string{other.Pin()}, false},
		{"rotation: old pin beside the new", []string{other.Pin(), leaf.Pin()}, true},
		{"pin of the CA", []string{tlstest.Pin(ca.Cert)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.ControlPlanePins = tc.pins
			p, err := ControlPlanePolicy(cfg)
			require.NoError(t, err)
			c, err := outbound.New(p)
			require.NoError(t, err)
			resp, err := c.ControlPlaneClient().Get(url)
			if !tc.ok {
				require.ErrorIs(t, err, outbound.ErrPinMismatch)
				return
			}
			require.NoError(t, err)
			_ = resp.Body.Close()
		})
	}
}

func TestLogTransportSecurity(t *testing.T) {
	catalog, err := oauthflow.LoadCatalog()
	require.NoError(t, err)
	tests := []struct {
		name      string
		cfg       config.Config
		want, not []string
	}{
		{
			name: "production postgres allowed plaintext for a sidecar",
			cfg: config.Config{Profile: config.ProfileProduction, DatabaseAllowPlaintext: true,
				DatabaseURL: "postgres://authpipe:hunter2@127.0.0.1:5432/authpipe?sslmode=disable"},
			want: []string{"allowed by AUTHPIPE_DATABASE_ALLOW_PLAINTEXT", "sslmode=disable", "plain HTTP in the production profile"},
			not:  []string{"hunter2"},
		},
		{
			name: "verify-full with a client certificate",
			cfg: config.Config{Profile: config.ProfileProduction, TLSCertFile: "c", TLSKeyFile: "k", TLSClientCAFile: "ca",
				DatabaseURL: "postgres://authpipe@db/authpipe?sslmode=verify-full&sslrootcert=/r&sslcert=/c&sslkey=/k"},
			want: []string{"sslmode=verify-full", "client_certificate=true", "client_certificates=true"},
			not:  []string{"without TLS", "plain HTTP"},
		},
		{
			name: "pins without a control plane",
			cfg:  config.Config{ControlPlanePins: []string{"sha256/x"}, DatabaseURL: "sqlite://./x.db"},
			want: []string{"pins are unused", "control_plane_pins=1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			logTransportSecurity(slog.New(slog.NewTextHandler(&buf, nil)), tc.cfg, catalog)
			for _, w := range tc.want {
				require.Contains(t, buf.String(), w)
			}
			for _, n := range tc.not {
				require.NotContains(t, buf.String(), n)
			}
		})
	}
}

func TestLogTransportSecurityNamesTLS12Providers(t *testing.T) {
	yaml := strings.Join([]string{
		"providers:",
		"  - name: lagging",
		"    display_name: Lagging",
		"    auth_mode: api_key",
		"    api_base_url: https://api.lagging.example.com",
		"    api_key_auth: header",
		"    api_key_header: Authorization",
		"    api_key_format: \"Bearer {key}\"",
		"    min_tls_version: \"1.2\"",
	}, "\n")
	catalog, err := oauthflow.ParseCatalog([]byte(yaml))
	require.NoError(t, err)
	var buf bytes.Buffer
	logTransportSecurity(slog.New(slog.NewTextHandler(&buf, nil)), config.Config{DatabaseURL: "sqlite://./x.db"}, catalog)
	require.Contains(t, buf.String(), "providers=lagging")
}

func TestProviderClientsPinsAndMetric(t *testing.T) {
	ca := tlstest.NewCA(t, "provider CA")
	leaf, stranger := ca.Server(t), ca.Server(t)
	files, dir := newFiles(t, leaf, nil)
	addr := serveTLS(t, files)
	url := "https://127.0.0.1:" + port(addr) + "/"
	cfg := config.Config{OutboundAllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		OutboundCAFile: ca.WriteFile(t, dir, "ca")}
	reg := prometheus.NewRegistry()
	clients, err := ProviderClients(cfg, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	_, err = ProviderClients(cfg, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err, "a second set on the same registry shares the counter")

	provider := oauthflow.Provider{Name: "acme", Pins: []string{stranger.Pin()}}
	c, err := clients.For(provider.MinTLSVersion, provider.Pins)
	require.NoError(t, err)
	_, err = c.TokenClient().Get(url)
	require.ErrorIs(t, err, outbound.ErrPinMismatch)
	require.Equal(t, 1.0, refusals(t, reg, "pin_mismatch"))

	provider.Pins = append(provider.Pins, leaf.Pin()) // rotation: the new pin beside the old
	c, err = clients.For(provider.MinTLSVersion, provider.Pins)
	require.NoError(t, err)
	resp, err := c.TokenClient().Get(url)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, 1.0, refusals(t, reg, "pin_mismatch"))
}

// refusals reads authpipe_outbound_refusals_total{kind} from reg.
func refusals(t *testing.T, reg *prometheus.Registry, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "authpipe_outbound_refusals_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

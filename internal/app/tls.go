package app

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// tlsCheckInterval is how often the served files are looked at again, at most.
const tlsCheckInterval = 5 * time.Second

// tlsFiles serves the certificate, key and optional client-CA bundle on disk and reloads
// them when their content changes, so a rotated Kubernetes Secret (swapped in place
// behind a symlink) takes effect without a restart. It reads the files at most every
// tlsCheckInterval, during a handshake; a pair that does not load (half written, key and
// certificate not matching) is ignored and the previous one kept until the next check.
//
// Every handshake gets a snapshot tls.Config: TLS 1.3 only, h2 and http/1.1, and with a
// client CA, tls.VerifyClientCertIfGiven. A client certificate is optional at the TLS
// layer because browsers (connect pages, the OAuth callback) and health probes have
// none; one that is presented must chain to the CA or the handshake fails, and the API
// layer requires it on API-key routes (proxy.WithClientCertBinding).
type tlsFiles struct {
	certFile, keyFile, clientCAFile string

	every time.Duration
	now   func() time.Time
	log   *slog.Logger

	mu      sync.Mutex
	conf    *tls.Config // the current snapshot
	digest  [sha256.Size]byte
	failed  [sha256.Size]byte // digest of the last content that failed to load (logged once)
	checked time.Time
}

func newTLSFiles(certFile, keyFile, clientCAFile string, log *slog.Logger) (*tlsFiles, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &tlsFiles{certFile: certFile, keyFile: keyFile, clientCAFile: clientCAFile,
		every: tlsCheckInterval, now: time.Now, log: log}
	raw, digest, err := r.read()
	if err != nil {
		return nil, err
	}
	conf, err := r.build(raw)
	if err != nil {
		return nil, err
	}
	r.conf, r.digest, r.checked = conf, digest, r.now()
	return r, nil
}

// serverConfig is the listener's tls.Config; each handshake takes the current snapshot.
func (r *tlsFiles) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return r.current(), nil },
	}
}

// current returns the snapshot, reloading first when the check interval has passed and
// the files' content changed.
func (r *tlsFiles) current() *tls.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.checked) < r.every {
		return r.conf
	}
	r.checked = now
	raw, digest, err := r.read()
	if err != nil || digest == r.digest {
		if err != nil && digest != r.failed {
			r.failed = digest
			r.log.Warn("TLS files unreadable; still serving the previous certificate", "err", err)
		}
		return r.conf
	}
	conf, err := r.build(raw)
	if err != nil {
		if digest != r.failed {
			r.failed = digest
			r.log.Warn("TLS files changed but do not load; still serving the previous certificate", "err", err)
		}
		return r.conf
	}
	r.conf, r.digest = conf, digest
	leaf := conf.Certificates[0].Leaf
	r.log.Info("TLS certificate reloaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	return r.conf
}

// tlsRaw is the content of the served files.
type tlsRaw struct{ cert, key, clientCA []byte }

func (r *tlsFiles) read() (tlsRaw, [sha256.Size]byte, error) {
	var raw tlsRaw
	var errs []error
	for _, f := range []struct {
		path string
		dst  *[]byte
	}{{r.certFile, &raw.cert}, {r.keyFile, &raw.key}, {r.clientCAFile, &raw.clientCA}} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			errs = append(errs, err) // names the path, never the content
		}
		*f.dst = b
	}
	h := sha256.New()
	for _, b := range [][]byte{raw.cert, raw.key, raw.clientCA} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return raw, [sha256.Size]byte(h.Sum(nil)), errors.Join(errs...)
}

func (r *tlsFiles) build(raw tlsRaw) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(raw.cert, raw.key)
	if err != nil {
		// crypto/tls errors describe the PEM structure, never the key bytes.
		return nil, fmt.Errorf("load certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"h2", "http/1.1"},
		Certificates: []tls.Certificate{cert},
	}
	if r.clientCAFile != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(raw.clientCA) {
			return nil, fmt.Errorf("client CA bundle %s holds no PEM certificate", r.clientCAFile)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return conf, nil
}

// OutboundPolicy is the policy every outbound client starts from: the allowed private
// ranges and the system roots plus AUTHPIPE_OUTBOUND_CA_FILE. TLS 1.3 is the default
// minimum; per-provider escape hatches and pins are added by outbound.Clients.
func OutboundPolicy(cfg config.Config) (outbound.Policy, error) {
	p := outbound.Policy{AllowCIDRs: cfg.OutboundAllowCIDRs}
	if cfg.OutboundCAFile != "" {
		roots, err := outbound.LoadCABundle(cfg.OutboundCAFile)
		if err != nil {
			return outbound.Policy{}, &ConfigError{Var: config.EnvOutboundCAFile, Err: err}
		}
		p.RootCAs = roots
	}
	return p, nil
}

// ProviderClients returns the outbound clients for provider calls (token exchange,
// refresh, revoke, health checks): OutboundPolicy as the base, then per provider its
// min_tls_version and pins (outbound.Clients.For). Refusals (unsafe address, pin
// mismatch, oversized answer, refused redirect) are logged and counted in reg, if not
// nil, as authpipe_outbound_refusals_total{kind}.
func ProviderClients(cfg config.Config, log *slog.Logger, reg prometheus.Registerer) (*outbound.Clients, error) {
	p, err := OutboundPolicy(cfg)
	if err != nil {
		return nil, err
	}
	return outbound.NewClients(p, outbound.WithLogger(log), OutboundMetrics(reg))
}

// ForwardClients are ProviderClients for the forwarding proxy: no body cap (forwards
// stream) and a two-minute budget per request.
func ForwardClients(cfg config.Config, log *slog.Logger, reg prometheus.Registerer) (*outbound.Clients, error) {
	p, err := OutboundPolicy(cfg)
	if err != nil {
		return nil, err
	}
	p.MaxResponseBytes = outbound.NoResponseLimit
	p.Timeouts.Overall = 2 * time.Minute
	return outbound.NewClients(p, outbound.WithLogger(log), OutboundMetrics(reg))
}

// providerTokenClient adapts c to "the token client for this provider" (no redirects),
// as refresher.WithProviderClient takes it.
func providerTokenClient(c *outbound.Clients) func(oauthflow.Provider) (*http.Client, error) {
	return func(p oauthflow.Provider) (*http.Client, error) {
		oc, err := c.For(p.MinTLSVersion, p.Pins)
		if err != nil {
			return nil, err
		}
		return oc.TokenClient(), nil
	}
}

// OutboundMetrics is an outbound.WithMetrics hook counting refusals by kind in
// authpipe_outbound_refusals_total on reg (shared by every client registered on the same
// registry); with a nil reg it counts nothing.
func OutboundMetrics(reg prometheus.Registerer) outbound.Option {
	if reg == nil {
		return outbound.WithMetrics(func(outbound.Event) {})
	}
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "authpipe", Name: "outbound_refusals_total",
		Help: "Outbound calls refused by the client's policy, by kind (unsafe_address, pin_mismatch, response_too_large, redirect_refused).",
	}, []string{"kind"})
	if err := reg.Register(cv); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				cv = existing
			}
		}
	}
	return outbound.WithMetrics(func(e outbound.Event) { cv.WithLabelValues(string(e.Kind)).Inc() })
}

// ControlPlanePolicy is OutboundPolicy with the control plane's pins
// (AUTHPIPE_CONTROL_PLANE_PINS). A pinned client refuses plain http and never retries
// a pin failure without pins.
func ControlPlanePolicy(cfg config.Config) (outbound.Policy, error) {
	p, err := OutboundPolicy(cfg)
	if err != nil {
		return p, err
	}
	p.Pins = cfg.ControlPlanePins
	return p, nil
}

// logTransportSecurity says once, at start, how every hop is protected, and warns about
// the deliberate exceptions: a PostgreSQL connection allowed without TLS, catalog
// providers allowed TLS 1.2, plain HTTP in production.
func logTransportSecurity(log *slog.Logger, cfg config.Config, catalog *oauthflow.Catalog) {
	inbound := []any{"https", cfg.TLSEnabled()}
	if cfg.TLSEnabled() {
		inbound = append(inbound, "min_version", "1.3", "client_certificates", cfg.TLSClientCAFile != "")
	}
	log.Info("transport security: inbound", inbound...)
	if !cfg.TLSEnabled() && cfg.Production() {
		log.Warn("serving plain HTTP in the production profile: terminate TLS 1.3 in front of the proxy or set " +
			config.EnvTLSCertFile + " and " + config.EnvTLSKeyFile)
	}

	if cfg.DatabaseDialect() == "postgres" {
		mode, clientCert := postgresTLS(cfg.DatabaseURL)
		log.Info("transport security: database", "sslmode", mode, "client_certificate", clientCert)
		if !postgresEncrypted(mode) {
			msg := "PostgreSQL connection may run without TLS"
			if cfg.Production() && cfg.DatabaseAllowPlaintext {
				msg += ": allowed by " + config.EnvDatabaseAllowPlaintext + " (only for a TLS-terminating sidecar on localhost)"
			}
			log.Warn(msg, "sslmode", mode)
		}
	}

	log.Info("transport security: outbound", "min_version", "1.3", "extra_ca_file", cfg.OutboundCAFile != "",
		"control_plane_pins", len(cfg.ControlPlanePins))
	if len(cfg.ControlPlanePins) > 0 && !cfg.ControlPlaneEnabled() {
		log.Warn(config.EnvControlPlanePins + " is set but no control plane is configured; the pins are unused")
	}
	if catalog != nil {
		var legacy []string
		for _, p := range catalog.All() {
			if p.MinTLSVersion == "1.2" {
				legacy = append(legacy, p.Name)
			}
		}
		if len(legacy) > 0 {
			log.Warn("catalog providers allowed TLS 1.2 (min_tls_version \"1.2\")", "providers", strings.Join(legacy, ","))
		}
	}
}

// postgresTLS returns the URL's sslmode ("" when absent) and whether it names a client
// certificate. It never returns any other part of the URL.
func postgresTLS(raw string) (mode string, clientCert bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false
	}
	q := u.Query()
	return q.Get("sslmode"), q.Get("sslcert") != "" && q.Get("sslkey") != ""
}

// postgresEncrypted reports whether libpq/pgx sslmode guarantees TLS.
func postgresEncrypted(mode string) bool {
	return mode == "require" || mode == "verify-ca" || mode == "verify-full"
}

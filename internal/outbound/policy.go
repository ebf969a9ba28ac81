package outbound

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"
)

// Defaults applied by New to zero fields of Policy.
const (
	DefaultDialTimeout           = 5 * time.Second
	DefaultTLSHandshakeTimeout   = 5 * time.Second
	DefaultResponseHeaderTimeout = 10 * time.Second
	DefaultOverallTimeout        = 30 * time.Second
	DefaultMaxResponseBytes      = 1 << 20 // 1 MiB: ample for any token or revocation answer
	// NoResponseLimit as Policy.MaxResponseBytes disables the body cap (streaming forwards).
	NoResponseLimit int64 = -1
	// MaxForwardRedirects is how many same-origin redirects ForwardClient follows.
	MaxForwardRedirects = 3
)

// Policy is the security policy of one Client. Build one Client per distinct policy
// (say one for providers, one per provider that needs TLS 1.2 or pins, one for the
// control plane with its pins).
type Policy struct {
	// AllowCIDRs are private or special ranges that may be reached anyway
	// (AUTHPIPE_OUTBOUND_ALLOW_CIDRS). Empty: none.
	AllowCIDRs []netip.Prefix
	// MinTLSVersion is tls.VersionTLS13 (the default when zero) or tls.VersionTLS12, the
	// escape hatch for a provider configured with min_tls_version "1.2".
	MinTLSVersion uint16
	// RootCAs verifies server chains; nil means the system roots. See LoadCABundle.
	RootCAs *x509.CertPool
	// Pins, if not empty, are "sha256/<base64 SPKI SHA-256>" values (RFC 7469 §2.4
	// format); at least one certificate of a verified chain must match one of them.
	// List old and new keys together to rotate. A pinned Client refuses plain http.
	Pins []string
	// Timeouts per phase; zero fields take the defaults.
	Timeouts Timeouts
	// MaxResponseBytes caps every response body; 0 means DefaultMaxResponseBytes,
	// NoResponseLimit disables the cap.
	MaxResponseBytes int64
}

// Timeouts bound each phase of a request.
type Timeouts struct {
	Dial           time.Duration // TCP connect, all resolved addresses together
	TLSHandshake   time.Duration
	ResponseHeader time.Duration // from request written to response headers read
	Overall        time.Duration // whole request including reading the body (http.Client.Timeout)
}

// withDefaults returns p with zero fields defaulted. It does not modify p.
func (p Policy) withDefaults() Policy {
	if p.MinTLSVersion == 0 {
		p.MinTLSVersion = tls.VersionTLS13
	}
	if p.MaxResponseBytes == 0 {
		p.MaxResponseBytes = DefaultMaxResponseBytes
	}
	t := &p.Timeouts
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&t.Dial, DefaultDialTimeout},
		{&t.TLSHandshake, DefaultTLSHandshakeTimeout},
		{&t.ResponseHeader, DefaultResponseHeaderTimeout},
		{&t.Overall, DefaultOverallTimeout},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	return p
}

// validate reports every problem with a defaulted policy.
func (p Policy) validate() error {
	var errs []error
	if p.MinTLSVersion != tls.VersionTLS12 && p.MinTLSVersion != tls.VersionTLS13 {
		errs = append(errs, fmt.Errorf("MinTLSVersion must be TLS 1.2 or 1.3, got %#04x", p.MinTLSVersion))
	}
	if p.MaxResponseBytes < 0 && p.MaxResponseBytes != NoResponseLimit {
		errs = append(errs, errors.New("MaxResponseBytes must be positive, 0 (default) or NoResponseLimit"))
	}
	for name, d := range map[string]time.Duration{
		"Dial": p.Timeouts.Dial, "TLSHandshake": p.Timeouts.TLSHandshake,
		"ResponseHeader": p.Timeouts.ResponseHeader, "Overall": p.Timeouts.Overall,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("timeout %s must not be negative", name))
		}
	}
	if _, err := newAllowList(p.AllowCIDRs); err != nil {
		errs = append(errs, err)
	}
	if _, err := parsePins(p.Pins); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("outbound: invalid policy: %w", err)
	}
	return nil
}

// LoadCABundle returns the system roots plus every PEM certificate in the file at path,
// for Policy.RootCAs. It fails if the file holds no certificate.
func LoadCABundle(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path) //nolint:gosec // operator-supplied path
	if err != nil {
		return nil, fmt.Errorf("outbound: read CA bundle: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		return nil, fmt.Errorf("outbound: system roots: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("outbound: CA bundle %s holds no PEM certificate", path)
	}
	return pool, nil
}

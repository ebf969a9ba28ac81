package outbound

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/authpipe/authpipe-proxy/internal/tlsutil"
)

// Clients builds and caches outbound clients that share a base policy and options
// (allowed ranges, roots, timeouts, logger, metrics hook) and differ only in minimum TLS
// version and pins. Safe for concurrent use.
type Clients struct {
	base Policy
	opts []Option

	mu sync.Mutex
	m  map[string]*Client
}

// NewClients validates base by building the default client (TLS 1.3, or base's own
// MinTLSVersion, and base's pins).
func NewClients(base Policy, opts ...Option) (*Clients, error) {
	if base.MinTLSVersion == 0 {
		base.MinTLSVersion = tls.VersionTLS13
	}
	c := &Clients{base: base, opts: slices.Clone(opts), m: map[string]*Client{}}
	if _, err := c.client(base.MinTLSVersion, base.Pins); err != nil {
		return nil, err
	}
	return c, nil
}

// For returns the client for a destination with the given min_tls_version setting (""
// or "1.3" for TLS 1.3, "1.2" for the escape hatch) and pins (none: chain verification
// only). Pins given here replace the base policy's.
func (c *Clients) For(minTLSVersion string, pins []string) (*Client, error) {
	v, err := tlsutil.ParseTLSVersion(minTLSVersion)
	if err != nil {
		return nil, err
	}
	if len(pins) == 0 {
		pins = c.base.Pins
	}
	if err := tlsutil.ValidatePins(pins); err != nil {
		return nil, fmt.Errorf("tlsutil: %w", err)
	}
	return c.client(v, pins)
}

func (c *Clients) client(v uint16, pins []string) (*Client, error) {
	sorted := slices.Clone(pins)
	slices.Sort(sorted)
	key := fmt.Sprintf("%#04x|%s", v, strings.Join(slices.Compact(sorted), ","))
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.m[key]; ok {
		return cl, nil
	}
	p := c.base
	p.MinTLSVersion = v
	p.Pins = slices.Clone(pins)
	cl, err := New(p, c.opts...)
	if err != nil {
		return nil, err
	}
	c.m[key] = cl
	return cl, nil
}

// CloseIdleConnections closes the idle connections of every client built so far.
func (c *Clients) CloseIdleConnections() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.m {
		cl.CloseIdleConnections()
	}
}

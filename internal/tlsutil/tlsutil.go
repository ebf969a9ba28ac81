// Package tlsutil owns the per-destination TLS policy of outbound calls: SPKI pin
// syntax (RFC 7469 section 2.4, "sha256/<base64>") and Clients, which hands out one
// outbound.Client per distinct (minimum TLS version, pins) pair so that every provider
// is reached with its own policy: TLS 1.3 unless it is configured with
// min_tls_version "1.2", and, when it lists pins, only through a chain that carries one
// of them. A pinned client never falls back to an unpinned one.
//
// Certificate generation for tests lives in the tlstest sub-package.
package tlsutil

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
)

// MaxPins bounds a pin list: enough for a current key, a next key and a backup.
const MaxPins = 8

// ValidatePins checks that every pin is "sha256/" + the standard base64 of 32 bytes
// and that there are at most MaxPins. Messages name positions, not values.
func ValidatePins(pins []string) error {
	if len(pins) > MaxPins {
		return fmt.Errorf("at most %d pins", MaxPins)
	}
	for i, p := range pins {
		b64, ok := strings.CutPrefix(p, "sha256/")
		sum, err := base64.StdEncoding.DecodeString(b64)
		if !ok || err != nil || len(sum) != sha256.Size {
			return fmt.Errorf("pin %d is not sha256/<base64 of 32 bytes>", i+1)
		}
	}
	return nil
}

// Clients builds and caches outbound clients that share a base policy and options
// (allowed ranges, roots, timeouts, logger, metrics hook) and differ only in minimum TLS
// version and pins. Safe for concurrent use.
type Clients struct {
	base outbound.Policy
	opts []outbound.Option

	mu sync.Mutex
	m  map[string]*outbound.Client
}

// NewClients validates base by building the default client (TLS 1.3, or base's own
// MinTLSVersion, and base's pins).
func NewClients(base outbound.Policy, opts ...outbound.Option) (*Clients, error) {
	if base.MinTLSVersion == 0 {
		base.MinTLSVersion = tls.VersionTLS13
	}
	c := &Clients{base: base, opts: slices.Clone(opts), m: map[string]*outbound.Client{}}
	if _, err := c.client(base.MinTLSVersion, base.Pins); err != nil {
		return nil, err
	}
	return c, nil
}

// For returns the client for a destination with the given min_tls_version setting (""
// or "1.3" for TLS 1.3, "1.2" for the escape hatch) and pins (none: chain verification
// only). Pins given here replace the base policy's.
func (c *Clients) For(minTLSVersion string, pins []string) (*outbound.Client, error) {
	v, err := outbound.ParseTLSVersion(minTLSVersion)
	if err != nil {
		return nil, err
	}
	if len(pins) == 0 {
		pins = c.base.Pins
	}
	if err := ValidatePins(pins); err != nil {
		return nil, fmt.Errorf("tlsutil: %w", err)
	}
	return c.client(v, pins)
}

func (c *Clients) client(v uint16, pins []string) (*outbound.Client, error) {
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
	cl, err := outbound.New(p, c.opts...)
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

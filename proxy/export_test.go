package proxy

import (
	"net/http"
	"net/netip"
	"time"
)

// Internals exercised by the external tests of this package (forward_path_test.go,
// dpop_test.go, edge_test.go). The package's own gin middleware is named require, which
// an internal test importing testify's require could not coexist with.
var (
	ConfinePath    = confinePath
	ParseDPoPProof = parseDPoPProof
	SameHTU        = sameHTU
	TokenInURL     = tokenInURL
)

// DPoPVerifier wraps the verifier for tests.
type DPoPVerifier struct{ v *dpopVerifier }

// NewDPoPVerifier builds a verifier with an injected clock.
func NewDPoPVerifier(nonces bool, now func() time.Time) (*DPoPVerifier, error) {
	v, err := newDPoPVerifier(dpopOptions{nonces: nonces, now: now})
	return &DPoPVerifier{v}, err
}

// Verify checks a proof.
func (d *DPoPVerifier) Verify(raw, method, htu, apiKey, jkt string) error {
	return d.v.verify(raw, method, htu, apiKey, jkt)
}

// Nonce is the current server nonce.
func (d *DPoPVerifier) Nonce() string { return d.v.nonce(d.v.now()) }

// ResolveClient returns the client address and scheme the edge sees for r.
func ResolveClient(trusted []netip.Prefix, r *http.Request) (netip.Addr, string) {
	return (&edge{trusted: trusted}).resolveClient(r)
}

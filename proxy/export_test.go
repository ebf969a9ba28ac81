package proxy

import (
	"net/http"
	"net/netip"
)

// Internals exercised by the external tests of this package (forward_path_test.go,
// edge_test.go). The package's own gin middleware is named require, which
// an internal test importing testify's require could not coexist with.
var ConfinePath = confinePath

// ResolveClient returns the client address and scheme the edge sees for r.
func ResolveClient(trusted []netip.Prefix, r *http.Request) (netip.Addr, string) {
	return (&edge{trusted: trusted}).resolveClient(r)
}

package ratelimit

import "net/netip"

// ClientPrefix is the bucket key of a client address: an IPv4 address (also written as
// IPv4-mapped IPv6) is its own /32, an IPv6 address counts as its /64. A /64 is the
// smallest block an IPv6 host is given (RFC 7421, SLAAC); whoever holds one can send from
// any of its 2^64 addresses, so a limit keyed by /128 would not limit anyone. The zero
// Addr (a unix socket) is the zero Prefix: all such clients share one bucket.
func ClientPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 64
	if a.Is4() {
		bits = 32
	}
	p, _ := a.Prefix(bits) // the zero Addr gives the zero Prefix; the zone is dropped
	return p
}

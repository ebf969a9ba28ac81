package outbound

import (
	"net/netip"
)

// blockedRange is a special-purpose range (IANA IPv4/IPv6 Special-Purpose Address
// Registries, RFC 6890) that a tenant-supplied URL must not reach.
type blockedRange struct {
	prefix netip.Prefix
	reason string
}

func mustPrefixes(pairs ...string) []blockedRange {
	out := make([]blockedRange, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, blockedRange{netip.MustParsePrefix(pairs[i]), pairs[i+1]})
	}
	return out
}

// Fixed tables, never modified after initialisation.
var (
	blockedV4 = mustPrefixes(
		"0.0.0.0/8", "this-network (RFC 791) or unspecified",
		"10.0.0.0/8", "private (RFC 1918)",
		"100.64.0.0/10", "shared CGNAT space (RFC 6598)",
		"127.0.0.0/8", "loopback",
		"169.254.0.0/16", "link-local / cloud metadata (RFC 3927)",
		"172.16.0.0/12", "private (RFC 1918)",
		"192.0.0.0/24", "IETF protocol assignments (RFC 6890)",
		"192.0.2.0/24", "documentation (RFC 5737)",
		"192.88.99.0/24", "6to4 relay anycast (RFC 7526)",
		"192.168.0.0/16", "private (RFC 1918)",
		"198.18.0.0/15", "benchmarking (RFC 2544)",
		"198.51.100.0/24", "documentation (RFC 5737)",
		"203.0.113.0/24", "documentation (RFC 5737)",
		"224.0.0.0/4", "multicast",
		"240.0.0.0/4", "reserved or broadcast (RFC 1112, RFC 919)",
	)
	blockedV6 = mustPrefixes(
		"::/128", "unspecified",
		"::1/128", "loopback",
		"::/96", "IPv4-compatible (deprecated, RFC 4291)",
		"64:ff9b:1::/48", "local-use NAT64 (RFC 8215)",
		"100::/64", "discard-only (RFC 6666)",
		"2001:2::/48", "benchmarking (RFC 5180)",
		"2001:db8::/32", "documentation (RFC 3849)",
		"3fff::/20", "documentation (RFC 9637)",
		"5f00::/16", "SRv6 SIDs (RFC 9602)",
		"fc00::/7", "unique local (RFC 4193)",
		"fe80::/10", "link-local",
		"fec0::/10", "site-local (deprecated, RFC 3879)",
		"ff00::/8", "multicast",
	)
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052
	sixToFour      = netip.MustParsePrefix("2002::/16")    // RFC 3056
	teredo         = netip.MustParsePrefix("2001::/32")    // RFC 4380
)

// unsafeReason reports why a is not a public unicast destination, or "" if it is. IPv6
// forms that embed an IPv4 address (mapped, NAT64, 6to4, Teredo) are judged by the
// embedded address as well.
func unsafeReason(a netip.Addr) string {
	if !a.IsValid() {
		return "invalid address"
	}
	if a.Zone() != "" {
		return "scoped address with zone"
	}
	if a.Is4In6() {
		if r := unsafeReason(a.Unmap()); r != "" {
			return "IPv4-mapped " + r
		}
		return ""
	}
	if a.Is4() {
		for _, b := range blockedV4 {
			if b.prefix.Contains(a) {
				return b.reason
			}
		}
		return ""
	}
	b := a.As16()
	switch {
	case nat64WellKnown.Contains(a):
		if r := unsafeReason(netip.AddrFrom4([4]byte(b[12:16]))); r != "" {
			return "NAT64 to " + r
		}
		return ""
	case sixToFour.Contains(a):
		if r := unsafeReason(netip.AddrFrom4([4]byte(b[2:6]))); r != "" {
			return "6to4 embedding " + r
		}
	case teredo.Contains(a):
		server := netip.AddrFrom4([4]byte(b[4:8]))
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		if r := unsafeReason(server); r != "" {
			return "Teredo server " + r
		}
		if r := unsafeReason(client); r != "" {
			return "Teredo client " + r
		}
	}
	for _, br := range blockedV6 {
		if br.prefix.Contains(a) {
			return br.reason
		}
	}
	return ""
}

// allowList is a validated set of operator-allowed prefixes.
type allowList []netip.Prefix

// contains reports whether a (or, for an IPv4-mapped address, its IPv4 form) lies in an
// allowed prefix.
func (l allowList) contains(a netip.Addr) bool {
	a = a.WithZone("")
	for _, p := range l {
		if p.Contains(a) || p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// check returns an *UnsafeAddressError when a may not be dialed.
func (l allowList) check(host string, a netip.Addr) error {
	if a.Zone() != "" {
		// A zone pins the address to an interface; never a provider endpoint.
		return &UnsafeAddressError{Host: host, Addr: a, Reason: "scoped address with zone"}
	}
	if l.contains(a) {
		return nil
	}
	if r := unsafeReason(a); r != "" {
		return &UnsafeAddressError{Host: host, Addr: a, Reason: r}
	}
	return nil
}

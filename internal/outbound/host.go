package outbound

import (
	"net/netip"
	"strconv"
	"strings"
)

// Host names are judged the same way by CheckURL (configuration time) and by the dialer
// (use time), so a host that passes one cannot mean something else to the other.

// hostKind is what a URL host is, once classified.
type hostKind int

const (
	hostIP        hostKind = iota // a canonical IP literal
	hostLocalhost                 // localhost or *.localhost (RFC 6761 §6.3)
	hostName                      // a DNS name to resolve
)

// loopbackAddrs is what localhost means (RFC 6761 §6.3: never sent to DNS).
var loopbackAddrs = [...]netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}

// classifyHost classifies a host (no port, no brackets). It returns an
// *UnsafeAddressError for hosts that are malformed or ambiguous: numeric hosts in any
// form other than a canonical dotted quad (decimal 2130706433, octal 0177.0.0.1, hex
// 0x7f.1, short 127.1 — WHATWG and inet_aton read these as IPv4 addresses while Go's
// resolver sends them to DNS), and names with characters outside LDH + underscore.
func classifyHost(host string) (hostKind, netip.Addr, error) {
	if host == "" {
		return 0, netip.Addr{}, &UnsafeAddressError{Host: host, Reason: "empty host"}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Is4() && a.String() != host {
			return 0, a, &UnsafeAddressError{Host: host, Addr: a, Reason: "non-canonical IP literal"}
		}
		return hostIP, a, nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "" || strings.HasSuffix(name, ".") {
		return 0, netip.Addr{}, &UnsafeAddressError{Host: host, Reason: "malformed host name"}
	}
	if endsInNumber(name) {
		a, ok := parseLegacyIPv4(name)
		if !ok {
			return 0, netip.Addr{}, &UnsafeAddressError{Host: host, Reason: "malformed numeric host"}
		}
		return 0, a, &UnsafeAddressError{Host: host, Addr: a, Reason: "non-canonical numeric host"}
	}
	if !validDNSName(name) {
		return 0, netip.Addr{}, &UnsafeAddressError{Host: host, Reason: "malformed host name"}
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return hostLocalhost, netip.Addr{}, nil
	}
	return hostName, netip.Addr{}, nil
}

// validDNSName accepts lower-case LDH labels (plus '_', seen in real service names) of
// 1..63 octets, 253 octets in all. Non-ASCII hosts must be given in punycode: IDNA
// mapping would turn full-width digits into ASCII ones.
func validDNSName(name string) bool {
	if len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if len(label) == 0 || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// endsInNumber is the WHATWG URL Standard's "ends in a number" test: a host whose last
// label is all digits, or 0x followed by hex digits, is parsed as IPv4 by browsers.
func endsInNumber(name string) bool {
	name = strings.TrimSuffix(name, ".")
	last := name[strings.LastIndexByte(name, '.')+1:]
	if last == "" {
		return false
	}
	if isAll(last, isDigit) {
		return true
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return isAll(last[2:], isHexDigit)
	}
	return false
}

// parseLegacyIPv4 parses the WHATWG / inet_aton forms: 1 to 4 dot-separated parts, each
// decimal, octal (leading 0) or hex (0x); the last part fills the remaining bytes.
func parseLegacyIPv4(name string) (netip.Addr, bool) {
	name = strings.TrimSuffix(name, ".")
	parts := strings.Split(name, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, p := range parts {
		n, ok := parseLegacyPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 255 {
				return netip.Addr{}, false
			}
			v = v<<8 | n
			continue
		}
		rest := uint(8 * (5 - len(parts)))
		if n >= 1<<rest {
			return netip.Addr{}, false
		}
		v = v<<rest | n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseLegacyPart(p string) (uint64, bool) {
	base := 10
	switch {
	case p == "":
		return 0, false
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		p, base = p[2:], 16
		if p == "" {
			return 0, true // WHATWG: "0x" is zero
		}
	case len(p) >= 2 && p[0] == '0':
		p, base = p[1:], 8
	}
	n, err := strconv.ParseUint(p, base, 64)
	if err != nil || n > 1<<32 {
		return 0, false
	}
	return n, true
}

func isAll(s string, f func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !f(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool    { return c >= '0' && c <= '9' }
func isHexDigit(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

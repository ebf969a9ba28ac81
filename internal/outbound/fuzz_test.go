package outbound

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// FuzzCheckURL: whatever CheckURL accepts (with no allow list) is an http(s) URL without
// userinfo whose host is not a forbidden address under any reading: netip, net.ParseIP,
// or the legacy inet_aton / WHATWG numeric forms (re-implemented here independently).
// The seed corpus is in testdata/fuzz/FuzzCheckURL.
func FuzzCheckURL(f *testing.F) {
	for _, tc := range ssrfPayloads {
		f.Add("http://" + tc.host + "/")
	}
	f.Add("https://github.com/login/oauth/access_token")
	f.Fuzz(func(t *testing.T, raw string) {
		if CheckURL(raw, nil) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted an unparseable URL %q", raw)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("accepted scheme %q", u.Scheme)
		}
		if u.User != nil {
			t.Fatalf("accepted userinfo in %q", raw)
		}
		host := strings.ToLower(u.Hostname())
		if host == "" {
			t.Fatalf("accepted empty host in %q", raw)
		}
		name := strings.TrimRight(host, ".")
		if name == "localhost" || strings.HasSuffix(name, ".localhost") {
			t.Fatalf("accepted localhost in %q", raw)
		}
		for _, a := range interpretations(host) {
			if forbiddenOracle(a) {
				t.Fatalf("accepted %q whose host reads as %s", raw, a)
			}
		}
	})
}

// interpretations lists every address a resolver or browser might read host as.
func interpretations(host string) []netip.Addr {
	var out []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		out = append(out, a)
	}
	if ip := net.ParseIP(host); ip != nil {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a)
		}
	}
	for _, h := range []string{host, strings.TrimSuffix(host, ".")} {
		if a, ok := inetAton(h); ok {
			out = append(out, a)
		}
	}
	return out
}

// inetAton follows glibc inet_aton: 1-4 parts, strtoul base 0 (0x hex, 0 octal).
func inetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		base, digits := 10, p
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, digits = 16, p[2:]
			if digits == "" {
				digits = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, digits = 8, p[1:]
		}
		if digits == "" || strings.ContainsAny(digits, "+-_") {
			return netip.Addr{}, false
		}
		v, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var v uint64
	for i, p := range vals[:len(vals)-1] {
		if p > 255 {
			return netip.Addr{}, false
		}
		v |= p << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// forbiddenOracle is a second, coarser opinion built on the standard library's own
// predicates plus the few ranges they do not cover.
func forbiddenOracle(a netip.Addr) bool {
	if a.Zone() != "" {
		return true
	}
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsMulticast() || a.IsUnspecified() || a.IsInterfaceLocalMulticast() {
		return true
	}
	for _, p := range []string{"0.0.0.0/8", "100.64.0.0/10", "240.0.0.0/4", "::/96", "fec0::/10"} {
		if netip.MustParsePrefix(p).Contains(a) {
			return true
		}
	}
	if a.Is6() && netip.MustParsePrefix("64:ff9b::/96").Contains(a) {
		b := a.As16()
		return forbiddenOracle(netip.AddrFrom4([4]byte(b[12:])))
	}
	return false
}

package outbound

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// CheckURL validates a tenant-supplied URL at configuration time (provider token_url,
// revocation_url, api_base_url, ...). It accepts only absolute http and https URLs with a
// host and no userinfo. IP literals, including IPv4-mapped, NAT64, 6to4 and Teredo IPv6
// forms, must be public unicast unless inside allow; numeric hosts that are not a
// canonical dotted quad (2130706433, 0177.0.0.1, 0x7f.1, 127.1) are always refused;
// localhost and *.localhost are refused unless allow covers 127.0.0.1 or ::1. Host names
// are not resolved here: that happens, and is checked again, at dial time.
//
// Every error wraps ErrUnsafeURL. Error messages never contain the URL's query.
func CheckURL(raw string, allow []netip.Prefix) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the whole input, query included: drop it.
		return fmt.Errorf("%w: malformed URL", ErrUnsafeURL)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme must be http or https", ErrUnsafeURL)
	}
	if u.Opaque != "" || u.Host == "" {
		return fmt.Errorf("%w: URL has no host", ErrUnsafeURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: URL must not contain userinfo", ErrUnsafeURL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: invalid port", ErrUnsafeURL)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("%w: empty port", ErrUnsafeURL)
	}
	host := u.Hostname()
	bracketed := strings.HasPrefix(u.Host, "[")
	kind, addr, err := classifyHost(host)
	if err != nil {
		return err
	}
	if bracketed != (kind == hostIP && addr.Is6()) {
		return fmt.Errorf("%w: IPv6 literals, and only they, go in brackets", ErrUnsafeURL)
	}
	al, err := newAllowList(allow)
	if err != nil {
		return err
	}
	switch kind {
	case hostIP:
		return al.check(host, addr)
	case hostLocalhost:
		for _, a := range loopbackAddrs {
			if al.contains(a) {
				return nil
			}
		}
		return &UnsafeAddressError{Host: host, Reason: "localhost"}
	default:
		return nil
	}
}

// newAllowList validates and normalises allowed prefixes.
func newAllowList(ps []netip.Prefix) (allowList, error) {
	out := make(allowList, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			return nil, fmt.Errorf("outbound: invalid allow CIDR %q", p.String())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

package providers

import (
	"errors"
	"net/netip"
	"net/url"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
)

// URLPolicy is the rule for a URL the proxy will call (a provider endpoint, a webhook).
type URLPolicy struct {
	// Dev allows plain http to an address in AllowCIDRs (local test providers).
	Dev bool
	// AllowCIDRs are the private ranges such a URL may point at.
	AllowCIDRs []netip.Prefix
}

// Check refuses a URL that is not absolute https (or, in Dev, http to an allowed
// address), carries userinfo or a fragment, is longer than 2 KiB, or points at a
// private, loopback or link-local address outside AllowCIDRs (an error wrapping
// outbound.ErrUnsafeURL).
func (p URLPolicy) Check(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.Fragment != "" || len(raw) > 2048 {
		return errors.New("must be an absolute URL without userinfo or fragment")
	}
	if u.Scheme != "https" {
		// Plain http only where an operator allowed the address (local test providers).
		addr, perr := netip.ParseAddr(u.Hostname())
		if u.Scheme != "http" || !p.Dev || perr != nil || !allowed(addr, p.AllowCIDRs) {
			return errors.New("must be an https URL")
		}
	}
	return outbound.CheckURL(raw, p.AllowCIDRs)
}

func allowed(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

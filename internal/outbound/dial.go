package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// Resolver looks up the addresses of a host. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ResolverFunc adapts a function to Resolver (tests use it to script DNS answers).
type ResolverFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// LookupNetIP implements Resolver; the network is ignored.
func (f ResolverFunc) LookupNetIP(ctx context.Context, _, host string) ([]netip.Addr, error) {
	return f(ctx, host)
}

// dialer resolves a host once, checks every answer and connects to the checked IP
// literals only. The name is never handed to the stdlib dialer, so a second, different
// DNS answer (rebinding) has no way in.
type dialer struct {
	allow    allowList
	resolver Resolver
	timeout  time.Duration
	net      *net.Dialer
	// raw replaces net.DialContext in tests; it receives only checked "ip:port" strings.
	raw    func(ctx context.Context, network, address string) (net.Conn, error)
	report func(Event)
}

func newDialer(allow allowList, r Resolver, timeout time.Duration, report func(Event)) *dialer {
	d := &dialer{allow: allow, resolver: r, timeout: timeout, report: report}
	d.net = &net.Dialer{KeepAlive: 30 * time.Second, Control: d.control}
	d.raw = d.net.DialContext
	return d
}

// DialContext is the http.Transport dial function.
func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("outbound: dial %s: %w", network, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("outbound: dial %s: invalid port", host)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()

	addrs, err := d.resolve(ctx, network, host)
	if err != nil {
		d.refused(err)
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("outbound: dial %s: no %s address", host, network)
	}
	var errs []error
	for i, a := range addrs {
		// Share the remaining time between the remaining addresses, as net.Dialer does.
		attemptCtx, cancelAttempt := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok && len(addrs)-i > 1 {
			attemptCtx, cancelAttempt = context.WithTimeout(ctx, time.Until(dl)/time.Duration(len(addrs)-i))
		}
		conn, err := d.raw(attemptCtx, network, netip.AddrPortFrom(a, uint16(port)).String())
		cancelAttempt()
		if err == nil {
			return conn, nil
		}
		if errors.Is(err, ErrUnsafeURL) {
			d.refused(err)
			return nil, err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("outbound: dial %s: %w", host, errors.Join(errs...))
}

// resolve returns the checked addresses to dial for host. Any unsafe answer refuses the
// whole name: a name that mixes public and private answers is an attack or a mistake.
// localhost names are never sent to DNS (RFC 6761) and dial only their allowed
// loopback addresses.
func (d *dialer) resolve(ctx context.Context, network, host string) ([]netip.Addr, error) {
	kind, addr, err := classifyHost(host)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	switch kind {
	case hostIP:
		if err := d.allow.check(host, addr); err != nil {
			return nil, err
		}
		addrs = []netip.Addr{addr.Unmap()}
	case hostLocalhost:
		for _, a := range loopbackAddrs {
			if d.allow.contains(a) {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) == 0 {
			return nil, &UnsafeAddressError{Host: host, Reason: "localhost"}
		}
	default:
		lookup := "ip"
		switch network {
		case "tcp4":
			lookup = "ip4"
		case "tcp6":
			lookup = "ip6"
		}
		answers, err := d.resolver.LookupNetIP(ctx, lookup, host)
		if err != nil {
			return nil, fmt.Errorf("outbound: resolve %s: %w", host, err)
		}
		if len(answers) == 0 {
			return nil, fmt.Errorf("outbound: resolve %s: no addresses", host)
		}
		for _, a := range answers {
			if err := d.allow.check(host, a); err != nil {
				return nil, err
			}
			addrs = append(addrs, a.Unmap())
		}
	}
	return filterFamily(network, addrs), nil
}

func filterFamily(network string, addrs []netip.Addr) []netip.Addr {
	if network != "tcp4" && network != "tcp6" {
		return addrs
	}
	out := addrs[:0:0]
	for _, a := range addrs {
		if a.Is4() == (network == "tcp4") {
			out = append(out, a)
		}
	}
	return out
}

// control re-checks the socket address right before connect(2): a second line of defence
// should anything ever hand the stdlib dialer an address that did not pass resolve.
func (d *dialer) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &UnsafeAddressError{Host: address, Reason: "unparseable socket address"}
	}
	return d.allow.check(ap.Addr().String(), ap.Addr())
}

func (d *dialer) refused(err error) {
	var ue *UnsafeAddressError
	if errors.As(err, &ue) {
		d.report(Event{Kind: EventUnsafeAddress, Host: ue.Host, Detail: ue.Reason})
	}
}

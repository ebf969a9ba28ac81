package outbound

import (
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// Sentinel errors. They are wrapped with %w; classify with errors.Is.
var (
	// ErrUnsafeURL: the URL, or the address a host name resolved to, is not allowed
	// (private, loopback, link-local, ... and not inside Policy.AllowCIDRs), or the URL is
	// malformed in a way that could hide such an address: 502 unsafe_url from a call that
	// was refused at use (configuration validation answers 400 unsafe_url itself).
	ErrUnsafeURL = problem.Sentinel(problem.ErrUnsafeURLUpstream, "outbound: unsafe url")
	// ErrPinMismatch: the server's verified chain contains none of the pinned keys.
	// Never retry.
	ErrPinMismatch = errors.New("outbound: certificate pin mismatch")
	// ErrResponseTooLarge: a response body exceeded the configured cap.
	ErrResponseTooLarge = errors.New("outbound: response too large")
	// ErrTooManyRedirects: ForwardClient stopped after MaxForwardRedirects redirects.
	ErrTooManyRedirects = errors.New("outbound: too many redirects")
)

// UnsafeAddressError reports a destination refused at dial time (or by CheckURL for an IP
// literal). It wraps ErrUnsafeURL, so errors.Is(err, ErrUnsafeURL) is true and the problem
// it carries (502 unsafe_url) reaches the client. Its message names the host and address,
// never a path or query.
type UnsafeAddressError struct {
	Host   string     // the host name or literal as dialed, without port
	Addr   netip.Addr // the refused address; the zero Addr when the name itself is refused
	Reason string     // e.g. "loopback", "private", "non-canonical numeric host"
}

func (e *UnsafeAddressError) Error() string {
	msg := "outbound: refusing to connect to " + e.Host
	if e.Addr.IsValid() && e.Addr.String() != e.Host {
		msg += " (" + e.Addr.String() + ")"
	}
	return msg + ": " + e.Reason
}

// Unwrap returns ErrUnsafeURL.
func (e *UnsafeAddressError) Unwrap() error { return ErrUnsafeURL }

// Redact returns err with the URL of a *url.Error in its chain reduced to scheme, host and
// path: http.Client puts the full request URL, query included, into its errors, and a
// query can carry an API key or an authorization code. errors.Is and errors.As still see
// the original chain.
func Redact(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	clean := &url.Error{Op: ue.Op, URL: redactURL(ue.URL), Err: ue.Err}
	if ue == err { //nolint:errorlint // identity check: is the *url.Error the outermost error?
		return clean
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), strconv.Quote(ue.URL), strconv.Quote(clean.URL)), err: err}
}

// redactedError carries a message with the URL rewritten and the original chain.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}

// IsPermanent reports whether err must not be retried: a pin mismatch, an unsafe address
// or an oversized response will fail the same way again.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrPinMismatch) || errors.Is(err, ErrUnsafeURL) || errors.Is(err, ErrResponseTooLarge)
}

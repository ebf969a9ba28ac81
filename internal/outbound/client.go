package outbound

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client owns one http.Transport built from one Policy. It hands out *http.Client values
// of different redirect behaviour that share the transport (and so the connection pool,
// the dial-time checks, the TLS policy and the body cap). Safe for concurrent use.
type Client struct {
	policy    Policy
	transport *capTransport
	log       *slog.Logger
	report    func(Event)
}

// EventKind names a security-relevant outcome reported to the metrics hook.
type EventKind string

// Event kinds.
const (
	EventUnsafeAddress    EventKind = "unsafe_address"     // dial refused by the address policy
	EventPinMismatch      EventKind = "pin_mismatch"       // TLS pin check failed
	EventResponseTooLarge EventKind = "response_too_large" // body over the cap
	EventRedirectRefused  EventKind = "redirect_refused"   // redirect not followed
)

// Event is what the metrics hook receives. Host never carries a path or query.
type Event struct {
	Kind   EventKind
	Host   string
	Detail string
}

// Option configures New.
type Option func(*options)

type options struct {
	resolver Resolver
	logger   *slog.Logger
	metrics  func(Event)
	// dialerHook lets this package's tests observe the dialer; no exported option sets it.
	dialerHook func(*dialer)
}

// WithResolver replaces DNS resolution (default net.DefaultResolver); *net.Resolver and
// ResolverFunc both fit. Answers are checked like any others.
func WithResolver(r Resolver) Option { return func(o *options) { o.resolver = r } }

// WithLogger sets the logger for refused destinations and pin failures (default: discard).
// Only host names and reasons are logged, never URLs, headers or bodies.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMetrics sets a hook called for each Event; it must be fast and safe for concurrent
// use (a Prometheus counter increment).
func WithMetrics(hook func(Event)) Option { return func(o *options) { o.metrics = hook } }

// New validates p, applies defaults and builds the transport.
func New(p Policy, opts ...Option) (*Client, error) {
	p = p.withDefaults()
	if err := p.validate(); err != nil {
		return nil, err
	}
	o := options{resolver: net.DefaultResolver, logger: slog.New(slog.DiscardHandler), metrics: func(Event) {}}
	for _, opt := range opts {
		opt(&o)
	}
	if o.resolver == nil || o.logger == nil || o.metrics == nil {
		return nil, fmt.Errorf("outbound: nil resolver, logger or metrics hook")
	}
	allow, _ := newAllowList(p.AllowCIDRs) // validated above
	pins, _ := parsePins(p.Pins)

	c := &Client{policy: p, log: o.logger}
	c.report = func(e Event) {
		c.log.Warn("outbound: refused", "kind", string(e.Kind), "host", e.Host, "detail", e.Detail)
		o.metrics(e)
	}
	d := newDialer(allow, o.resolver, p.Timeouts.Dial, c.report)
	if o.dialerHook != nil {
		o.dialerHook(d)
	}

	tlsConf := &tls.Config{
		MinVersion: p.MinTLSVersion,
		RootCAs:    p.RootCAs,
	}
	if pins != nil {
		tlsConf.VerifyConnection = func(cs tls.ConnectionState) error {
			err := pins.verifyConnection(cs)
			if err != nil {
				c.report(Event{Kind: EventPinMismatch, Host: cs.ServerName})
			}
			return err
		}
	}
	t := &http.Transport{
		Proxy:                 nil, // deliberately: see the package documentation
		DialContext:           d.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   p.Timeouts.TLSHandshake,
		ResponseHeaderTimeout: p.Timeouts.ResponseHeader,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		// Keep-alive connections are reused, not churned: at 32 concurrent forwards to one
		// provider a pool of 10 idle connections per host closed and re-dialled (and, over
		// TLS, re-handshook) a third of them on every wave (bench external, issue 18).
		MaxIdleConns:           512,
		MaxIdleConnsPerHost:    128,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	c.transport = &capTransport{base: t, max: p.MaxResponseBytes, httpsOnly: pins != nil, report: c.report}
	return c, nil
}

// TokenClient is for token exchange, refresh, revocation and health checks: it never
// follows a redirect. A 3xx comes back as the response, its Location unvisited, so the
// client secret and code are never re-sent elsewhere; callers treat any non-2xx as failure.
func (c *Client) TokenClient() *http.Client {
	return &http.Client{
		Transport: c.transport,
		Timeout:   c.policy.Timeouts.Overall,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// ControlPlaneClient is TokenClient under another name: build the control-plane Client
// from its own Policy (its pins, its CA bundle) and call this, so call sites say what
// they talk to.
func (c *Client) ControlPlaneClient() *http.Client { return c.TokenClient() }

// ForwardClient is for the forwarding proxy: it follows at most MaxForwardRedirects
// redirects, and only within the scope the request's context carries (WithRedirectScope):
// the same origin as the scope's base URL (scheme, host and port, default ports
// normalised) and a path under its path (UnderBasePath). A redirect anywhere else, or any
// redirect of a request without a scope, is not followed: the 3xx is returned as is, so
// the credential the proxy attached is sent only where the provider's api_base_url says.
func (c *Client) ForwardClient() *http.Client {
	return &http.Client{
		Transport: c.transport,
		Timeout:   c.policy.Timeouts.Overall,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			base, _ := req.Context().Value(redirectScopeKey{}).(*url.URL)
			switch {
			case base == nil:
				c.report(Event{Kind: EventRedirectRefused, Host: req.URL.Hostname(), Detail: "no redirect scope"})
				return http.ErrUseLastResponse
			case Origin(req.URL.Scheme, req.URL.Host) != Origin(base.Scheme, base.Host):
				c.report(Event{Kind: EventRedirectRefused, Host: req.URL.Hostname(), Detail: "cross-origin"})
				return http.ErrUseLastResponse
			case !UnderBasePath(base.EscapedPath(), req.URL.EscapedPath()):
				c.report(Event{Kind: EventRedirectRefused, Host: req.URL.Hostname(), Detail: "outside the base path"})
				return http.ErrUseLastResponse
			}
			if len(via) > MaxForwardRedirects {
				c.report(Event{Kind: EventRedirectRefused, Host: req.URL.Hostname(), Detail: "too many redirects"})
				return fmt.Errorf("%w: stopped after %d", ErrTooManyRedirects, MaxForwardRedirects)
			}
			return nil
		},
	}
}

type redirectScopeKey struct{}

// WithRedirectScope returns a context under which a ForwardClient request may follow
// redirects that stay within base's origin and under base's path (a provider's
// api_base_url). base's query is ignored.
func WithRedirectScope(ctx context.Context, base *url.URL) context.Context {
	return context.WithValue(ctx, redirectScopeKey{}, base)
}

// UnderBasePath reports whether the escaped path p names a resource under the escaped
// basePath (its trailing slash ignored; "" or "/" is the whole origin): p is basePath or
// continues it with "/", and its remainder holds no dot segment (also before a ";"
// parameter), no backslash and no percent-encoded dot, slash, backslash or percent, so
// that no server's decoding can walk it out of basePath. "/api" does not cover "/apix".
func UnderBasePath(basePath, p string) bool {
	rest, ok := strings.CutPrefix(p, strings.TrimRight(basePath, "/"))
	if !ok || (rest != "" && rest[0] != '/') || strings.ContainsRune(rest, '\\') {
		return false
	}
	lower := strings.ToLower(rest)
	for _, enc := range []string{"%2e", "%2f", "%5c", "%25"} {
		if strings.Contains(lower, enc) {
			return false
		}
	}
	for _, seg := range strings.Split(rest, "/") {
		if seg, _, _ = strings.Cut(seg, ";"); seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// CloseIdleConnections closes pooled connections (on shutdown, or after a policy change).
func (c *Client) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// Origin is scheme://host:port in lower case with the default port made explicit (the
// form vault's origin bindings keep).
func Origin(scheme, hostport string) string {
	scheme = strings.ToLower(scheme)
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(host), port)
}

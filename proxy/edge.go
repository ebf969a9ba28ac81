package proxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/dpop"
	"github.com/authpipe/authpipe-proxy/internal/formscan"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/internal/ratelimit"
)

// Edge hardening that runs before authentication: the client address as seen through
// trusted reverse proxies, the refusal of credentials in URLs and in form bodies
// (internal/formscan finds them), the body limit, and the per-IP and per-key rate limits
// (ratelimit.go).

// EdgeConfig configures the edge middleware. The zero value is usable: no trusted proxies,
// the default rate limits, DPoP without server nonces.
type EdgeConfig struct {
	// TrustedProxies are the reverse proxies (AUTHPIPE_TRUSTED_PROXIES) whose
	// X-Forwarded-For and X-Forwarded-Proto are believed. From any other peer those
	// headers are deleted before anything reads them.
	TrustedProxies []netip.Prefix
	// PerKey limits each API key (token bucket); zero fields take DefaultPerKeyLimit,
	// a negative Rate disables the limit.
	PerKey ratelimit.Limit
	// PerIP limits each client address on unauthenticated routes and on authentication
	// failures; zero fields take DefaultPerIPLimit, a negative Rate disables it.
	PerIP ratelimit.Limit
	// DPoPNonces makes DPoP proofs carry a server nonce (RFC 9449 section 8).
	DPoPNonces bool
	// DPoPWindow is how far a proof's iat may be from now (default 60 s).
	DPoPWindow time.Duration
	// DPoPPerKey is how many DPoP proofs one API key may have in flight (accepted, not yet
	// expired) on this replica (default 100,000; internal/dpop).
	DPoPPerKey int
}

// edge is the state of the edge middleware.
type edge struct {
	trusted []netip.Prefix
	keys    *ratelimit.Set[string]       // by API key id
	ips     *ratelimit.Set[netip.Prefix] // by client address: IPv4 /32, IPv6 /64 (ratelimit.ClientPrefix)
	dpop    *dpop.Verifier
	jkts    *jktCache
	limits  limitDetails // the 429s' details (ratelimit.go)
}

// initEdge builds the edge and the forwarder; New calls it after the options.
func (s *Server) initEdge() error {
	ec := s.cfg.Edge
	e := &edge{trusted: ec.TrustedProxies}
	perKey, perIP := ec.PerKey.OrDefault(DefaultPerKeyLimit), ec.PerIP.OrDefault(DefaultPerIPLimit)
	e.keys = ratelimit.NewSet[string](perKey, 100_000, s.now)
	e.ips = ratelimit.NewSet[netip.Prefix](perIP, 100_000, s.now)
	e.limits = newLimitDetails(perKey, perIP) // ratelimit.go
	// The jtis of accepted proofs go to the database, so that every replica refuses a replay.
	v, err := dpop.New(dpop.Options{Window: ec.DPoPWindow, Nonces: ec.DPoPNonces, Now: s.now, Replay: s.store,
		ReplayPerKey: ec.DPoPPerKey})
	if err != nil {
		return err
	}
	e.dpop = v
	e.jkts = newJKTCache(100_000)
	s.edge = e
	s.fwd, err = newForwarder(s.outbound, s.cfg.OutboundAllowCIDRs)
	return err
}

// configureEngine makes gin's own idea of the client address match the edge's, so that
// c.ClientIP() anywhere in the API is the rightmost untrusted hop.
func (s *Server) configureEngine(r *gin.Engine) {
	r.ForwardedByClientIP = true
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	var cidrs []string
	for _, p := range s.edge.trusted {
		cidrs = append(cidrs, p.Masked().String())
	}
	_ = r.SetTrustedProxies(cidrs) // validated prefixes: cannot fail
}

// edgeMiddleware resolves the client address, refuses credentials in the URL (and in a
// form body on the API's own routes) and applies the body limit. It runs before routing
// decisions that depend on the caller.
func (s *Server) edgeMiddleware(c *gin.Context) {
	ip, _ := s.edge.resolveClient(c.Request) // the scheme matters only to DPoP, which checks htu against PublicURL
	requestOf(c).clientIP = ip
	if tokenInURL(c.Request.URL.RawQuery) {
		fail(c, problem.ErrTokenInURL)
		return
	}
	limit, forward := int64(MaxBodyBytes), strings.HasPrefix(c.Request.URL.Path, "/v1/proxy/")
	if forward {
		limit = MaxForwardBodyBytes
	}
	if c.Request.ContentLength > limit {
		fail(c, problem.ErrPayloadTooLarge)
		return
	}
	if c.Request.Body != nil && c.Request.Body != http.NoBody {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
		// A provider webhook's body is the provider's (Twilio and Slack post forms) and is
		// verified byte for byte: it is not inspected for our credentials either.
		inbound := strings.HasPrefix(c.Request.URL.Path, "/v1/inbound/")
		if !forward && !inbound && isFormBody(c.Request.Header) && !formBodyAllowed(c) {
			return
		}
	}
	c.Next()
}

// tokenInURL reports an access_token query parameter (RFC 6750 section 2.3 allows it; we
// do not: URLs end up in logs, histories and Referer headers).
func tokenInURL(rawQuery string) bool { return formscan.HasAccessToken(rawQuery) }

// formBodyAllowed refuses a form-encoded body with an access_token parameter (RFC 6750
// section 2.2 allows it; we do not: the API key goes in the Authorization header only,
// and a client that sends it in a body should hear so rather than get a 401). It reads
// the body, which the 1 MiB limit bounds, and puts it back for the handler.
//
// Only the API's own routes are inspected, never the forwarding route: its body (up to
// 32 MiB) is streamed to the provider unbuffered and belongs to the provider's API, for
// which form bodies are ordinary (and some define an access_token parameter of their
// own). The forwarder drops the caller's credentials from the headers and does not
// interpret bodies. The API's own routes read whole JSON bodies of at most 1 MiB, so
// buffering a form here costs no more than their own read (docs/security.md).
func formBodyAllowed(c *gin.Context) bool {
	body, err := io.ReadAll(c.Request.Body)
	switch {
	case isTooLarge(err):
		fail(c, problem.ErrPayloadTooLarge)
		return false
	case err != nil:
		fail(c, problem.ErrInvalidRequest.WithDetail("could not read the request body"))
		return false
	case formscan.HasAccessToken(body):
		fail(c, problem.ErrTokenInURL.WithDetail("Credentials must not be sent in a form body; use the Authorization header"))
		return false
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	c.Request.ContentLength = int64(len(body))
	return true
}

// isFormBody reports a Content-Type of application/x-www-form-urlencoded (any case, any
// parameters), without allocating.
func isFormBody(h http.Header) bool {
	ct := h.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded")
}

// resolveClient returns the client address and scheme. Only a peer inside TrustedProxies
// may speak for the client: X-Forwarded-For (every header line, joined) is walked from the
// right and the first address that is not a trusted proxy is the client; X-Forwarded-Proto
// is taken from the nearest proxy. From an untrusted peer both are deleted.
func (e *edge) resolveClient(r *http.Request) (netip.Addr, string) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	peer := remoteAddr(r)
	if !e.isTrusted(peer) {
		r.Header.Del("X-Forwarded-For")
		r.Header.Del("X-Forwarded-Proto")
		r.Header.Del("X-Forwarded-Host")
		r.Header.Del("Forwarded")
		return peer, scheme
	}
	client := peer
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		hops := strings.Split(strings.Join(xff, ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // garbage: stop at the last address we could read
			}
			client = a.Unmap()
			if !e.isTrusted(client) {
				break
			}
		}
		r.Header.Set("X-Forwarded-For", strings.Join(trimAll(hops), ", "))
	}
	if p := r.Header.Values("X-Forwarded-Proto"); len(p) > 0 {
		all := strings.Split(strings.Join(p, ","), ",")
		switch v := strings.ToLower(strings.TrimSpace(all[len(all)-1])); v {
		case "http", "https":
			scheme = v
		}
	}
	return client, scheme
}

func (e *edge) isTrusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range e.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func trimAll(ss []string) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// clientIP is the client address the edge resolved (the zero Addr for a unix socket).
func clientIP(c *gin.Context) netip.Addr {
	return requestOf(c).clientIP
}

package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/jitter"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// The forwarding proxy: ANY /v1/proxy/{connection_id}/{path...} (API.md "Forwarding
// proxy"). The caller never sees the credential; the provider never sees the caller's.
//
//   - The path is confined under the provider's api_base_url after decoding (confinePath).
//   - The caller's Authorization, Cookie, Proxy-*, X-Forwarded-*, Forwarded and hop-by-hop
//     headers are dropped; the credential the provider expects is injected.
//   - Requests go through the one SSRF-safe client (internal/outbound): the destination is
//     checked at dial time, redirects are followed only within the origin and under the
//     path of api_base_url (outbound.WithRedirectScope); any other 3xx is returned to the
//     caller as is, unfollowed, so the credential is never sent there.
//   - Bodies stream both ways. Only a small body of known length (64 KiB) is held in
//     memory, so that it can be replayed on a retry.
//   - Idempotent requests are retried on 429/502/503/504 honouring Retry-After (at most
//     forwardMaxRetries times, never waiting longer than forwardMaxWait); a 401 from the
//     provider on an oauth2 connection triggers one refresh and one retry.
//   - Every forward is audited as "proxy.request" (method and upstream status, never the path
//     or query), counted per key, connection, method, status and window like token reads
//     (reads.go). The audit writer's health is checked first: the proxy fails closed with
//     503 audit_unavailable rather than use a credential unaudited.

// MaxForwardBodyBytes bounds a forwarded request body (the API's own 1 MiB limit does not
// apply to /v1/proxy; see forwardBodyLimit).
const MaxForwardBodyBytes = 32 << 20

const (
	forwardMaxRetries    = 2
	forwardMaxWait       = 5 * time.Second
	forwardReplayMax     = 64 << 10 // idempotent bodies up to this size are kept for a retry
	forwardDrainMax      = 64 << 10 // bytes of a discarded response read to reuse the connection
	forwardEventType     = audit.ProxyRequest
	forwardDefaultBudget = 2 * time.Minute // whole forward, body included
)

// tokenRefresher refreshes an oauth2 connection's access token now, after a provider's 401:
// the tokens service (Deps.Tokens) unless WithTokenRefresher sets another.
type tokenRefresher interface {
	// ForceRefresh refreshes the connection's tokens (single-flight with every other
	// refresh of it) and returns the new access token.
	ForceRefresh(ctx context.Context, workspaceID, connectionID string) (vault.Secret, error)
}

// WithTokenRefresher lets the forwarding proxy refresh once after a provider's 401.
func WithTokenRefresher(r tokenRefresher) Option { return func(s *Server) { s.refresher = r } }

// WithOutbound sets the SSRF-safe client forwards go through. Build it with
// outbound.Policy{AllowCIDRs: ..., MaxResponseBytes: outbound.NoResponseLimit}. Default: one
// built from Config.OutboundAllowCIDRs.
func WithOutbound(c *outbound.Client) Option { return func(s *Server) { s.outbound = c } }

// forwardMethods are the methods /v1/proxy forwards.
var forwardMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
	http.MethodHead, http.MethodOptions}

// forwarder holds the HTTP clients of the forwarding proxy.
type forwarder struct {
	client   *http.Client // TLS 1.3
	client12 *http.Client // for providers with min_tls_version "1.2"
	sleep    func(ctx context.Context, d time.Duration) error
}

func newForwarder(main *outbound.Client, cidrs []netip.Prefix) (*forwarder, error) {
	var err error
	if main == nil {
		main, err = outbound.New(outbound.Policy{AllowCIDRs: cidrs, MaxResponseBytes: outbound.NoResponseLimit,
			Timeouts: outbound.Timeouts{Overall: forwardDefaultBudget}})
		if err != nil {
			return nil, err
		}
	}
	legacy, err := outbound.New(outbound.Policy{AllowCIDRs: cidrs, MaxResponseBytes: outbound.NoResponseLimit,
		MinTLSVersion: tls.VersionTLS12, Timeouts: outbound.Timeouts{Overall: forwardDefaultBudget}})
	if err != nil {
		return nil, err
	}
	return &forwarder{client: main.ForwardClient(), client12: legacy.ForwardClient(), sleep: jitter.Sleep}, nil
}

// credential is what gets injected: an access token, an API key or a basic credential,
// by its connection's auth mode (oauthflow.Provider.Authorize).
type credential struct {
	secret vault.Secret
	kind   oauthflow.AuthMode
}

func (s *Server) handleForward(c *gin.Context) {
	ctx := c.Request.Context()
	p := principal(c)
	id := c.Param("connection_id")
	suffix, ok := rawForwardSuffix(c.Request.URL.EscapedPath(), id)
	if !ok {
		fail(c, problem.ErrInvalidPath)
		return
	}
	cc, err := s.tokens.Usable(ctx, p.WorkspaceID, id) // the row, refused if it may not be used
	if err != nil {
		fail(c, err)
		return
	}
	conn := cc.Connection
	prov, err := s.providers.ResolveCached(ctx, p.WorkspaceID, conn.Provider)
	if err == nil {
		prov, err = oauthflow.ConnectionProvider(prov, conn) // the connection's filled URLs and API base
	}
	if errors.Is(err, store.ErrNotFound) {
		err = problem.ErrNoAPIBaseURL.WithDetail("the connection's provider is neither configured nor in the catalog")
	}
	if err != nil {
		fail(c, err)
		return
	}
	target, err := forwardTarget(prov.APIBaseURL, suffix, c.Request.URL.RawQuery)
	if err != nil {
		fail(c, err)
		return
	}
	// The target is known and allowed: only now is the credential opened (refreshed first
	// when it must be, refresher.Tokens).
	tok, err := s.tokens.Open(ctx, cc, 0)
	if err != nil {
		fail(c, err)
		return
	}
	cred := credential{secret: tok.Secret, kind: tok.Kind}
	// Redirects are followed only within the origin and under the path of api_base_url.
	base, _ := url.Parse(prov.APIBaseURL) // forwardTarget has parsed it
	c.Request = c.Request.WithContext(outbound.WithRedirectScope(ctx, base))
	if !s.audit.Healthy() {
		fail(c, audit.ErrUnavailable)
		return
	}
	body, replayable, err := forwardBody(c.Request)
	if err != nil {
		fail(c, err)
		return
	}
	hc, err := s.forwardClient(prov.MinTLSVersion, prov.Pins) // TLS floor and pins (forward_tls.go)
	if err != nil {
		fail(c, err)
		return
	}
	if hc, err = s.boundClient(ctx, hc, target, tok, p.KeyID); err != nil { // forward_origin.go
		fail(c, err)
		return
	}
	resp, err := s.forwardWithRetries(c, hc, target, prov, cred, body, replayable, p.WorkspaceID, conn.ID)
	if err != nil {
		fail(c, problem.Upstream(outbound.Redact(err)))
		return
	}
	defer resp.Body.Close()
	rk := audit.ReadKey{WorkspaceID: p.WorkspaceID, Actor: p.KeyID, ConnectionID: conn.ID, Type: forwardEventType,
		Outcome: audit.Success, Method: c.Request.Method, Status: resp.StatusCode}
	readClient(c, &rk) // the client baseline (reads.go)
	if err := s.audit.Count(ctx, rk, s.now()); err != nil {
		// The provider has already acted: answer, but make the gap visible.
		s.log.Error("proxy.request not audited", "request_id", requestIDOf(c), "connection_id", conn.ID)
	}
	writeForwardResponse(c, resp, cred)
}

// rawForwardSuffix returns the still-escaped path after /v1/proxy/{id}. The id segment
// must be the route's id spelled plainly: an encoded id could hide a separator.
func rawForwardSuffix(escaped, id string) (string, bool) {
	rest, ok := strings.CutPrefix(escaped, "/v1/proxy/")
	if !ok {
		return "", false
	}
	rawID, suffix, _ := strings.Cut(rest, "/")
	return "/" + suffix, rawID == id && id != ""
}

// forwardTarget joins the base URL, the confined path and the caller's query.
func forwardTarget(base, rawSuffix, rawQuery string) (*url.URL, error) {
	if base == "" || strings.Contains(base, "{") {
		return nil, problem.ErrNoAPIBaseURL.WithDetail("the provider's api_base_url is empty or needs per-account values")
	}
	b, err := url.Parse(base)
	if err != nil || (b.Scheme != "https" && b.Scheme != "http") || b.Host == "" || b.User != nil {
		return nil, problem.ErrNoAPIBaseURL.WithDetail("the provider's api_base_url is not an absolute http(s) URL")
	}
	escaped, err := confinePath(b.EscapedPath(), rawSuffix)
	if err != nil {
		return nil, problem.ErrInvalidPath.WithDetail(err.Error())
	}
	decoded, err := url.PathUnescape(escaped)
	if err != nil {
		return nil, problem.ErrInvalidPath
	}
	u := &url.URL{Scheme: b.Scheme, Host: b.Host, Path: decoded, RawPath: escaped, RawQuery: rawQuery}
	if b.RawQuery != "" {
		u.RawQuery = b.RawQuery
		if rawQuery != "" {
			u.RawQuery += "&" + rawQuery
		}
	}
	return u, nil
}

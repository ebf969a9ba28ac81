package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/audit"
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
//     checked at dial time, redirects are followed only within the same origin.
//   - Bodies stream both ways. Only a small body of known length (64 KiB) is held in
//     memory, so that it can be replayed on a retry.
//   - Idempotent requests are retried on 429/502/503/504 honouring Retry-After (at most
//     forwardMaxRetries times, never waiting longer than forwardMaxWait); a 401 from the
//     provider on an oauth2 connection triggers one refresh and one retry.
//   - Every forward is audited as "proxy.request" (method and upstream status, never the path
//     or query). The audit writer's health is checked first: the proxy fails closed with
//     503 audit_unavailable rather than use a credential unaudited.

// MaxForwardBodyBytes bounds a forwarded request body (the API's own 1 MiB limit does not
// apply to /v1/proxy; see forwardBodyLimit).
const MaxForwardBodyBytes = 32 << 20

const (
	forwardMaxRetries    = 2
	forwardMaxWait       = 5 * time.Second
	forwardReplayMax     = 64 << 10 // idempotent bodies up to this size are kept for a retry
	forwardDrainMax      = 64 << 10 // bytes of a discarded response read to reuse the connection
	forwardEventType     = "proxy.request"
	forwardDefaultBudget = 2 * time.Minute // whole forward, body included
)

// Problems of the forwarding proxy.
var (
	errInvalidPath    = problem.New(http.StatusBadRequest, "invalid_path", "Path leaves the provider's API base URL")
	errNoAPIBaseURL   = problem.New(http.StatusBadRequest, "no_api_base_url", "The provider has no usable api_base_url")
	errGatewayTimeout = problem.New(http.StatusGatewayTimeout, "gateway_timeout", "Provider did not answer in time")
)

// tokenRefresher refreshes an oauth2 connection's access token now. The refresh issue's
// refresher implements it; with none set the proxy does not retry a 401.
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
	return &forwarder{client: main.ForwardClient(), client12: legacy.ForwardClient(), sleep: sleepCtx}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// credential is what gets injected: an oauth2 access token or an API key.
type credential struct {
	secret vault.Secret
	oauth  bool
}

func (s *Server) handleForward(c *gin.Context) {
	ctx := c.Request.Context()
	p := principal(c)
	id := c.Param("connection_id")
	suffix, ok := rawForwardSuffix(c.Request.URL.EscapedPath(), id)
	if !ok {
		fail(c, errInvalidPath)
		return
	}
	tok, err := s.tokens.Credential(ctx, p.WorkspaceID, id, 0) // refreshed first when it must be (refresher.Tokens)
	if err != nil {
		fail(c, refreshProblem(err))
		return
	}
	cc := tok.Conn
	cred := credential{secret: tok.Secret, oauth: tok.Kind == oauthflow.AuthModeOAuth2}
	prov, err := s.providers.ResolveCached(ctx, p.WorkspaceID, cc.Provider)
	if errors.Is(err, store.ErrNotFound) {
		err = errNoAPIBaseURL.WithDetail("the connection's provider is neither configured nor in the catalog")
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
	resp, err := s.forwardWithRetries(c, hc, target, prov, cred, body, replayable, p.WorkspaceID, cc.ID)
	if err != nil {
		fail(c, forwardError(err))
		return
	}
	defer resp.Body.Close()
	if err := s.audit.Enqueue(audit.Event{WorkspaceID: p.WorkspaceID, At: s.now(), Type: forwardEventType,
		Actor: p.KeyID, ConnectionID: cc.ID, Outcome: audit.Success,
		Data: dataJSON("method", c.Request.Method, "status", fmt.Sprint(resp.StatusCode))}); err != nil {
		// The provider has already acted: answer, but make the gap visible.
		s.log.Error("proxy.request not audited", "request_id", requestIDOf(c), "connection_id", cc.ID)
	}
	writeForwardResponse(c, resp, cred.secret)
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
		return nil, errNoAPIBaseURL.WithDetail("the provider's api_base_url is empty or needs per-account values")
	}
	b, err := url.Parse(base)
	if err != nil || (b.Scheme != "https" && b.Scheme != "http") || b.Host == "" || b.User != nil {
		return nil, errNoAPIBaseURL.WithDetail("the provider's api_base_url is not an absolute http(s) URL")
	}
	escaped, err := confinePath(b.EscapedPath(), rawSuffix)
	if err != nil {
		return nil, errInvalidPath.WithDetail(err.Error())
	}
	decoded, err := url.PathUnescape(escaped)
	if err != nil {
		return nil, errInvalidPath
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

// forwardBody returns a body factory and whether the body can be sent again. Small bodies
// of known length are read into memory (bounded by forwardReplayMax) so a retry can resend
// them; anything else streams once.
func forwardBody(r *http.Request) (func() io.ReadCloser, bool, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return func() io.ReadCloser { return http.NoBody }, true, nil
	}
	if r.ContentLength > 0 && r.ContentLength <= forwardReplayMax {
		buf, err := io.ReadAll(io.LimitReader(r.Body, forwardReplayMax+1))
		if err != nil {
			if isTooLarge(err) {
				return nil, false, problem.ErrPayloadTooLarge
			}
			return nil, false, problem.ErrInvalidRequest.WithDetail("could not read the request body")
		}
		return func() io.ReadCloser { return io.NopCloser(bytes.NewReader(buf)) }, true, nil
	}
	used := false
	return func() io.ReadCloser {
		if used {
			return http.NoBody
		}
		used = true
		return r.Body
	}, false, nil
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// forwardWithRetries sends the request, retrying as the package comment says.
func (s *Server) forwardWithRetries(c *gin.Context, hc *http.Client, target *url.URL, prov oauthflow.Provider,
	cred credential, body func() io.ReadCloser, replayable bool, workspaceID, connID string) (*http.Response, error) {
	ctx := c.Request.Context()
	refreshed := false
	for attempt := 0; ; attempt++ {
		req, err := buildForwardRequest(ctx, c.Request, target, prov, cred, body)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		if !replayable {
			return resp, nil
		}
		// A 401 means the provider did not act: any method may be resent once with a
		// fresh token.
		if resp.StatusCode == http.StatusUnauthorized && cred.oauth && s.refresher != nil && !refreshed {
			refreshed = true
			tok, rerr := s.refresher.ForceRefresh(ctx, workspaceID, connID)
			if rerr != nil {
				return resp, nil // the provider's 401 stands
			}
			discard(resp)
			cred.secret = tok
			continue
		}
		wait, retry := retryDelay(resp, attempt, s.now())
		if !retry || !idempotent(c.Request.Method) {
			return resp, nil
		}
		discard(resp)
		if err := s.fwd.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// retryDelay says whether to retry after resp and how long to wait first: only on
// 429/502/503/504, at most forwardMaxRetries times, and never past forwardMaxWait (a
// Retry-After further out is returned to the caller as is).
func retryDelay(resp *http.Response, attempt int, now time.Time) (time.Duration, bool) {
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
	default:
		return 0, false
	}
	if attempt >= forwardMaxRetries {
		return 0, false
	}
	wait := time.Duration(100<<(2*attempt)) * time.Millisecond // 100 ms, 400 ms
	if ra := strings.TrimSpace(resp.Header.Get("Retry-After")); ra != "" {
		if d, ok := parseRetryAfter(ra, now); ok {
			wait = d
		} else {
			return 0, false
		}
	}
	if wait > forwardMaxWait {
		return 0, false
	}
	return wait, true
}

// parseRetryAfter reads delay-seconds or an HTTP-date (RFC 9110 section 10.2.3).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	var secs int
	if _, err := fmt.Sscanf(v, "%d", &secs); err == nil && fmt.Sprint(secs) == v {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}

func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, forwardDrainMax)
	_ = resp.Body.Close()
}

// buildForwardRequest copies the caller's method, safe headers and body onto target and
// injects the credential.
func buildForwardRequest(ctx context.Context, in *http.Request, target *url.URL, prov oauthflow.Provider,
	cred credential, body func() io.ReadCloser) (*http.Request, error) {
	u := *target
	out, err := http.NewRequestWithContext(ctx, in.Method, u.String(), nil)
	if err != nil {
		return nil, errInvalidPath
	}
	out.URL = &u
	out.Body = body()
	out.ContentLength = in.ContentLength
	if out.Body == http.NoBody {
		out.ContentLength = 0
	}
	out.Header = forwardRequestHeaders(in.Header, prov)
	for k, v := range prov.StaticHeaders {
		if !droppedRequestHeader(k) {
			out.Header.Set(k, v)
		}
	}
	if err := injectCredential(out, prov, cred); err != nil {
		return nil, err
	}
	return out, nil
}

// injectCredential puts the credential where the provider expects it: a Bearer token for
// oauth2; for api_key providers the configured header (APIKeyFormat with {key}) or HTTP
// Basic. An api_key provider without an injection style gets a Bearer token.
func injectCredential(r *http.Request, prov oauthflow.Provider, cred credential) error {
	key := cred.secret.Reveal()
	if strings.ContainsAny(key, "\r\n\x00") {
		return problem.ErrBadGateway.WithDetail("the stored credential cannot be sent in a header")
	}
	if cred.oauth {
		r.Header.Set("Authorization", "Bearer "+key)
		return nil
	}
	switch prov.APIKeyAuth {
	case oauthflow.APIKeyHeader:
		format := prov.APIKeyFormat
		if format == "" {
			format = "{key}"
		}
		r.Header.Set(prov.APIKeyHeader, strings.Replace(format, "{key}", key, 1))
	case oauthflow.APIKeyBasic:
		if prov.APIKeyBasicUsername != "" {
			r.SetBasicAuth(prov.APIKeyBasicUsername, key)
		} else {
			user, pass, _ := strings.Cut(key, ":")
			r.SetBasicAuth(user, pass)
		}
	default:
		r.Header.Set("Authorization", "Bearer "+key)
	}
	return nil
}

// hopByHop are the RFC 9110 section 7.6.1 connection-specific headers (plus the legacy
// Proxy-Connection); headers named in Connection are dropped too.
var hopByHop = []string{"Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection"}

// droppedRequestHeader reports caller headers never forwarded: credentials, cookies,
// proxy and forwarding metadata, this API's own headers, and framing.
func droppedRequestHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "cookie", "cookie2", "forwarded", "host", "content-length", "expect",
		"dpop", "x-real-ip", "x-request-id", "connection", "keep-alive", "te", "trailer",
		"transfer-encoding", "upgrade", "proxy-connection":
		return true
	}
	return strings.HasPrefix(n, "proxy-") || strings.HasPrefix(n, "x-forwarded-") || strings.HasPrefix(n, "x-authpipe-")
}

func forwardRequestHeaders(in http.Header, prov oauthflow.Provider) http.Header {
	out := make(http.Header, len(in))
	named := connectionTokens(in)
	for k, vs := range in {
		if droppedRequestHeader(k) || named[strings.ToLower(k)] {
			continue
		}
		if prov.APIKeyHeader != "" && strings.EqualFold(k, prov.APIKeyHeader) {
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// connectionTokens are the header names listed in Connection (RFC 9110 section 7.6.1).
func connectionTokens(h http.Header) map[string]bool {
	m := map[string]bool{}
	for _, v := range h.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				m[strings.ToLower(f)] = true
			}
		}
	}
	return m
}

// ownResponseHeaders are set by this server's middleware and never replaced by upstream.
var ownResponseHeaders = map[string]bool{
	"Cache-Control": true, "Strict-Transport-Security": true, "X-Content-Type-Options": true,
	"X-Frame-Options": true, "Referrer-Policy": true, "Content-Security-Policy": true, "X-Request-Id": true,
}

// writeForwardResponse streams the upstream response to the caller. Headers scoped to an
// origin (Set-Cookie, CORS, Alt-Svc, ...), hop-by-hop headers and any header that carries
// the injected credential are dropped.
func writeForwardResponse(c *gin.Context, resp *http.Response, secret vault.Secret) {
	key := secret.Reveal()
	named := connectionTokens(resp.Header)
	h := c.Writer.Header()
	for k, vs := range resp.Header {
		ck := http.CanonicalHeaderKey(k)
		if ownResponseHeaders[ck] || named[strings.ToLower(k)] || originScoped(ck) ||
			ck == "Authorization" || ck == "Proxy-Authenticate" || ck == "Proxy-Authorization" || isHopByHop(ck) {
			continue
		}
		if carriesSecret(vs, key) {
			continue
		}
		h[ck] = append([]string(nil), vs...)
	}
	c.Status(resp.StatusCode)
	c.Writer.WriteHeader(resp.StatusCode)
	c.Writer.WriteHeaderNow()
	streamBody(c.Writer, resp.Body, resp.ContentLength < 0)
}

// originScoped reports response headers that would act on this server's origin rather
// than the provider's: cookies, CORS grants, alternative services, site-data clearing.
func originScoped(k string) bool {
	switch k {
	case "Set-Cookie", "Set-Cookie2", "Alt-Svc", "Clear-Site-Data", "Content-Security-Policy-Report-Only",
		"Timing-Allow-Origin", "Origin-Agent-Cluster":
		return true
	}
	return strings.HasPrefix(k, "Access-Control-") || strings.HasPrefix(k, "Cross-Origin-")
}

func isHopByHop(k string) bool {
	for _, h := range hopByHop {
		if k == h {
			return true
		}
	}
	return false
}

func carriesSecret(vs []string, key string) bool {
	if len(key) < 4 {
		return false
	}
	for _, v := range vs {
		if strings.Contains(v, key) {
			return true
		}
	}
	return false
}

// streamBody copies without holding the body; chunked answers (server-sent events, long
// polls) are flushed as they arrive.
func streamBody(w gin.ResponseWriter, body io.Reader, flush bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flush {
				w.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// forwardError maps a transport failure to a problem without quoting the URL.
func forwardError(err error) error {
	var p *problem.Problem
	switch {
	case errors.As(err, &p):
		return p
	case isTooLarge(err):
		return problem.ErrPayloadTooLarge
	case errors.Is(err, outbound.ErrUnsafeURL):
		return problem.ErrUnsafeURLUpstream.WithCause(outbound.Redact(err))
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return errGatewayTimeout.WithCause(outbound.Redact(err))
	case errors.Is(err, context.Canceled):
		return problem.ErrBadGateway.WithDetail("the request was cancelled").WithCause(outbound.Redact(err))
	}
	return problem.ErrBadGateway.WithDetail("the provider could not be reached").WithCause(outbound.Redact(err))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

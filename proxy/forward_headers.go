package proxy

// Headers of the forwarding proxy: what of the caller's request reaches the provider, how
// the credential is injected, and what of the provider's answer reaches the caller.

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// buildForwardRequest copies the caller's method, safe headers and body onto target and
// injects the credential.
func buildForwardRequest(ctx context.Context, in *http.Request, target *url.URL, prov oauthflow.Provider,
	cred credential, body func() io.ReadCloser) (*http.Request, error) {
	u := *target
	out, err := http.NewRequestWithContext(ctx, in.Method, u.String(), nil)
	if err != nil {
		return nil, problem.ErrInvalidPath
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

// injectCredential puts the credential where the provider expects it
// (oauthflow.Provider.Authorize, the one place for every mode).
func injectCredential(r *http.Request, prov oauthflow.Provider, cred credential) error {
	return prov.Authorize(r, cred.kind, cred.secret)
}

// hopByHop are the RFC 9110 section 7.6.1 connection-specific headers (plus the legacy
// Proxy-Connection); headers named in Connection are dropped too.
var hopByHop = []string{"Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection"}

// droppedRequestHeader reports caller headers never forwarded: credentials, cookies,
// proxy and forwarding metadata, this API's own headers, and framing.
func droppedRequestHeader(name string) bool {
	if droppedRequestHeaders[http.CanonicalHeaderKey(name)] { // no allocation for a canonical name
		return true
	}
	return hasPrefixFold(name, "proxy-") || hasPrefixFold(name, "x-forwarded-") || hasPrefixFold(name, "x-authpipe-")
}

var droppedRequestHeaders = map[string]bool{
	"Authorization": true, "Cookie": true, "Cookie2": true, "Forwarded": true, "Host": true, "Content-Length": true,
	"Expect": true, "Dpop": true, "X-Real-Ip": true, "X-Request-Id": true, "Connection": true, "Keep-Alive": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Proxy-Connection": true,
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func forwardRequestHeaders(in http.Header, prov oauthflow.Provider) http.Header {
	out := make(http.Header, len(in))
	named := connectionTokens(in)
	for k, vs := range in {
		if droppedRequestHeader(k) || (named != nil && named[strings.ToLower(k)]) {
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
// Nil (no allocation) when there is no Connection header, the common case.
func connectionTokens(h http.Header) map[string]bool {
	if len(h["Connection"]) == 0 {
		return nil
	}
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
func writeForwardResponse(c *gin.Context, resp *http.Response, cred credential) {
	key, encoded := sentValues(cred)
	named := connectionTokens(resp.Header)
	h := c.Writer.Header()
	for k, vs := range resp.Header {
		ck := http.CanonicalHeaderKey(k)
		if ownResponseHeaders[ck] || (named != nil && named[strings.ToLower(k)]) || originScoped(ck) ||
			ck == "Authorization" || ck == "Proxy-Authenticate" || ck == "Proxy-Authorization" || isHopByHop(ck) {
			continue
		}
		if carriesSecret(vs, key) || carriesSecret(vs, encoded) {
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

// sentValues are what of cred an echoing provider could put in a response header: the
// token or key; for basic, the password and the Basic credential as sent (base64).
func sentValues(cred credential) (string, string) {
	if cred.kind != oauthflow.AuthModeBasic {
		return cred.secret.Reveal(), ""
	}
	b, err := oauthflow.OpenBasic(cred.secret)
	if err != nil {
		return "", ""
	}
	return b.Password.Reveal(), base64.StdEncoding.EncodeToString([]byte(b.Username.Reveal() + ":" + b.Password.Reveal()))
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

// streamBufs holds streamBody's copy buffers: one 32 KiB allocation per forward was the
// forwarding path's largest.
var streamBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// streamBody copies without holding the body; chunked answers (server-sent events, long
// polls) are flushed as they arrive.
func streamBody(w gin.ResponseWriter, body io.Reader, flush bool) {
	bp := streamBufs.Get().(*[]byte)
	defer streamBufs.Put(bp)
	buf := *bp
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

package authpipe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one authpipe-proxy. It is safe for concurrent use.
type Client struct {
	base       *url.URL // scheme://host[:port][/prefix], no trailing slash
	apiKey     string
	dpop       *DPoPKey
	hc         *http.Client
	maxRetries int
	maxWait    time.Duration
	userAgent  string
	now        func() time.Time
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey authenticates every call with an API key (ap_...).
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithDPoP proves possession of key on every call (RFC 9449), for API keys bound to it
// (created with "dpop_jkt": key.Thumbprint()). The proxy's base URL must be its public
// URL (AUTHPIPE_PUBLIC_URL): proofs name it.
func WithDPoP(key *DPoPKey) Option { return func(c *Client) { c.dpop = key } }

// WithHTTPClient uses hc for every call: its Transport carries client certificates (mTLS,
// for keys bound to a certificate), proxies and timeouts. Redirects are never followed.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds each call, retries included (default 30 s).
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		hc := *c.hc
		hc.Timeout = d
		c.hc = &hc
	}
}

// WithRetries sets how often an idempotent call answered 503 with Retry-After is retried
// (default 2), and the longest wait honoured (default 10 s; a longer Retry-After ends the
// retries).
func WithRetries(n int, maxWait time.Duration) Option {
	return func(c *Client) { c.maxRetries, c.maxWait = n, maxWait }
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the proxy at baseURL (for example "https://authpipe.internal").
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("authpipe: base URL must be an absolute http(s) URL without query: %q", baseURL)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("authpipe: base URL %q: plain http only to a loopback address (the API key would travel in clear)", baseURL)
	}
	c := &Client{
		base:       u,
		hc:         &http.Client{Timeout: 30 * time.Second},
		maxRetries: 2,
		maxWait:    10 * time.Second,
		userAgent:  "authpipe-go",
		now:        time.Now,
	}
	for _, o := range opts {
		o(c)
	}
	hc := *c.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &hc
	if c.apiKey == "" {
		return nil, errors.New("authpipe: an API key is required (WithAPIKey)")
	}
	return c, nil
}

// endpoint is the absolute URL of an escaped API path (which starts with "/v1/").
func (c *Client) endpoint(path string, q url.Values) *url.URL {
	u, err := url.Parse(c.base.String() + path)
	if err != nil { // only from a malformed id, which the caller escaped
		u = &url.URL{Scheme: c.base.Scheme, Host: c.base.Host, Path: c.base.Path + path}
	}
	u.RawQuery = q.Encode()
	return u
}

// authorize sets the credential headers of one attempt (a DPoP proof is single-use).
func (c *Client) authorize(req *http.Request, nonce string) error {
	req.Header.Set("User-Agent", c.userAgent)
	if c.dpop == nil {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
		return nil
	}
	proof, err := c.dpop.Proof(req.Method, req.URL, c.apiKey, nonce, c.now())
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "DPoP "+c.apiKey)
	req.Header.Set("DPoP", proof)
	return nil
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// do sends one API call with a JSON body (nil: none) and decodes a 2xx JSON answer into
// out (nil: discarded). Errors from the proxy are *Problem.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("authpipe: encode request: %w", err)
		}
	}
	res, err := c.send(ctx, method, c.endpoint(path, q), func() io.Reader {
		if raw == nil {
			return nil
		}
		return bytes.NewReader(raw)
	}, raw != nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		return problemFrom(res)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 8<<20)).Decode(out); err != nil {
		return fmt.Errorf("authpipe: decode %s %s answer: %w", method, path, err)
	}
	return nil
}

// send performs a request with retries: a 503 with Retry-After on an idempotent method
// is retried up to maxRetries times, and a DPoP nonce challenge once.
func (c *Client) send(ctx context.Context, method string, u *url.URL, body func() io.Reader, isJSON bool) (*http.Response, error) {
	nonce := ""
	nonceRetried := false
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), body())
		if err != nil {
			return nil, fmt.Errorf("authpipe: %w", err)
		}
		req.Header.Set("Accept", "application/json")
		if isJSON {
			req.Header.Set("Content-Type", "application/json")
		}
		if err := c.authorize(req, nonce); err != nil {
			return nil, err
		}
		res, err := c.hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("authpipe: %s %s: %w", method, u.Path, err)
		}
		if res.StatusCode == http.StatusUnauthorized && c.dpop != nil && !nonceRetried {
			if n := res.Header.Get("DPoP-Nonce"); n != "" {
				drain(res)
				nonce, nonceRetried = n, true
				attempt--
				continue
			}
		}
		if res.StatusCode != http.StatusServiceUnavailable || !idempotent(method) || attempt >= c.maxRetries {
			return res, nil
		}
		wait, ok := retryAfter(res.Header.Get("Retry-After"), c.now())
		if !ok || wait > c.maxWait {
			return res, nil
		}
		drain(res)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func drain(res *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// isLoopback reports whether host is localhost or a loopback IP.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

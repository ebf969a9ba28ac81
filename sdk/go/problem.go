package authpipe

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Problem is an error answer of the proxy (RFC 9457 problem+json). Code is stable and
// machine-readable; Detail never holds a secret.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
	// RetryAfter is the answer's Retry-After (429, 503), zero when absent.
	RetryAfter time.Duration `json:"-"`
	// RequestID is the X-Request-Id to quote to the proxy's operators.
	RequestID string `json:"-"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return fmt.Sprintf("authpipe: %d %s: %s", p.Status, p.Code, p.Detail)
	}
	return fmt.Sprintf("authpipe: %d %s", p.Status, p.Code)
}

// Codes an application acts on.
const (
	CodeNeedsReauth   = "needs_reauth"   // the end user must reconnect (a new connect session)
	CodeDisconnected  = "disconnected"   // the connection was disconnected
	CodeOriginChanged = "origin_changed" // the provider was re-pointed; the credential stays where it was granted
	CodeRateLimited   = "rate_limited"   // slow down; RetryAfter says for how long
)

// problemFrom reads an error answer. A body that is not problem+json still gives a
// Problem with the status (and code "http_<status>").
func problemFrom(res *http.Response) *Problem {
	p := &Problem{Status: res.StatusCode, RequestID: res.Header.Get("X-Request-Id")}
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err := json.Unmarshal(raw, p); err != nil || p.Code == "" {
		p.Code = fmt.Sprintf("http_%d", res.StatusCode)
	}
	p.Status = res.StatusCode
	if d, ok := retryAfter(res.Header.Get("Retry-After"), time.Now()); ok {
		p.RetryAfter = d
	}
	return p
}

func hasCode(err error, code string) bool {
	var p *Problem
	return errors.As(err, &p) && p.Code == code
}

// IsNeedsReauth reports whether the connection needs its end user to reconnect.
func IsNeedsReauth(err error) bool { return hasCode(err, CodeNeedsReauth) }

// IsDisconnected reports whether the connection was disconnected (410).
func IsDisconnected(err error) bool { return hasCode(err, CodeDisconnected) }

// IsOriginChanged reports whether the call was refused because it would have carried the
// credential to an origin it was not stored for (409).
func IsOriginChanged(err error) bool { return hasCode(err, CodeOriginChanged) }

// IsRateLimited reports whether the proxy refused the call for a rate limit, and how long
// it asks the caller to wait.
func IsRateLimited(err error) (time.Duration, bool) {
	var p *Problem
	if errors.As(err, &p) && (p.Code == CodeRateLimited || p.Status == http.StatusTooManyRequests) {
		return p.RetryAfter, true
	}
	return 0, false
}

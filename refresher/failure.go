package refresher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/jitter"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// This file classifies a failed refresh_token grant (oauthflow.Refresh) and spaces the
// attempts that follow: invalid_grant needs re-authorization, 429 honours Retry-After,
// everything else backs off exponentially with jitter.

// Class is how a failed refresh is treated.
type Class int

// Failure classes.
const (
	// ClassInvalidGrant: the provider refused the refresh token (RFC 6749 section 5.2).
	// After a re-read shows no other replica rotated it, the connection needs re-auth.
	ClassInvalidGrant Class = iota + 1
	// ClassRateLimited: HTTP 429; the provider's Retry-After is honoured.
	ClassRateLimited
	// ClassTransient: 5xx, timeouts, network errors, any other refusal: exponential
	// backoff with jitter, the current token is served while it is valid.
	ClassTransient
)

// Failure is a refresh call's failure reduced to what may be kept: an RFC 6749 error code
// (never the provider's text), the HTTP status, and a 429's Retry-After.
type Failure struct {
	Class      Class
	Code       string
	Status     int
	RetryAfter time.Duration
	cause      error // kept for errors.Is/As; its text is never shown
}

func (f *Failure) Error() string {
	return fmt.Sprintf("refresher: refresh failed: %s (HTTP %d)", f.Code, f.Status)
}

// Unwrap keeps the chain (a redacted outbound error, a context error) for errors.Is.
func (f *Failure) Unwrap() error { return f.cause }

// Classify turns the error of a refresh_token grant (oauthflow.Refresh) into a Failure.
func Classify(err error, now time.Time) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	var pe *oauthflow.ProviderError
	if errors.As(err, &pe) {
		out := &Failure{Class: ClassTransient, Code: pe.Code, Status: pe.Status}
		switch {
		case pe.Code == "invalid_grant":
			out.Class = ClassInvalidGrant
		case out.Status == http.StatusTooManyRequests:
			out.Class, out.Code = ClassRateLimited, "rate_limited"
			out.RetryAfter = retryAfter(pe.RetryAfter, now)
		case out.Status >= 500 && pe.NoCode:
			out.Code = "provider_unavailable"
		}
		return out
	}
	code := "network_error"
	switch {
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		code = "timeout"
	case errors.Is(err, outbound.ErrUnsafeURL):
		code = "unsafe_url"
	}
	return &Failure{Class: ClassTransient, Code: code, cause: outbound.Redact(err)}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// retryAfter parses Retry-After (RFC 9110 section 10.2.3): delay-seconds or an HTTP date.
// It is capped at a day.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		d = time.Duration(min(n, 86400)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), 24*time.Hour)
}

// backoff is the cooldown after the n-th consecutive transient failure (n ≥ 1):
// base·2^(n-1), capped at maxDelay, with ±20% jitter.
func backoff(n int, base, maxDelay time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	j := jitter.Duration(d/5 + 1)
	if jitter.Bool() {
		return d - j
	}
	return d + j
}

package proxy

// Retries of the forwarding proxy: which bodies can be sent again, when an idempotent
// request is retried (429/502/503/504, Retry-After) and the one refresh after a 401.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/internal/tracing"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

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
		_, span := tracing.StartClientHost(ctx, "forward", req.Method, target.Hostname()) // no trace context sent upstream
		resp, err := hc.Do(req)
		if err != nil {
			tracing.EndHTTP(span, 0, err)
			return nil, err
		}
		tracing.EndHTTP(span, resp.StatusCode, nil)
		if !replayable {
			return resp, nil
		}
		// A 401 means the provider did not act: any method may be resent once with a
		// fresh token (refreshed, or minted again).
		if resp.StatusCode == http.StatusUnauthorized && cred.kind.HasAccessToken() && s.refresher != nil && !refreshed {
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

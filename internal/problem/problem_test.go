package problem_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestSentinelCarriesItsProblem(t *testing.T) {
	errGone := problem.Sentinel(problem.ErrDisconnected, "lower: gone")
	errOther := problem.Sentinel(problem.ErrDisconnected, "lower: other")
	wrapped := fmt.Errorf("reading conn_1: %w", fmt.Errorf("query: %w", errGone))

	require.True(t, errors.Is(wrapped, errGone))
	require.False(t, errors.Is(wrapped, errOther), "a sentinel is its own value, not any error of its code")
	require.True(t, errors.Is(wrapped, problem.ErrDisconnected), "errors.Is finds the problem by code")
	require.Equal(t, "lower: gone", errGone.Error())

	p := problem.From(wrapped)
	require.Equal(t, http.StatusGone, p.Status)
	require.Equal(t, "disconnected", p.Code)
	require.ErrorIs(t, p, errGone, "the cause is kept for the log")
}

func TestFrom(t *testing.T) {
	for name, tc := range map[string]struct {
		err    error
		status int
		code   string
	}{
		"a problem":         {problem.ErrNotFound.WithDetail("no such thing"), 404, "not_found"},
		"a wrapped problem": {fmt.Errorf("x: %w", problem.ErrForbidden), 403, "forbidden"},
		"a body too large":  {fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 10}), 413, "payload_too_large"},
		"unknown":           {errors.New("pq: relation does not exist"), 500, "internal"},
		"a deadline":        {context.DeadlineExceeded, 500, "internal"},
	} {
		t.Run(name, func(t *testing.T) {
			p := problem.From(tc.err)
			require.Equal(t, tc.status, p.Status)
			require.Equal(t, tc.code, p.Code)
		})
	}
	p := problem.ErrConflict.WithDetail("d")
	require.Same(t, p, problem.From(p), "a problem passed as is is returned as is")
}

func TestUpstream(t *testing.T) {
	for name, tc := range map[string]struct {
		err    error
		status int
		code   string
	}{
		"deadline":        {fmt.Errorf("do: %w", context.DeadlineExceeded), 504, "gateway_timeout"},
		"net timeout":     {fmt.Errorf("do: %w", timeoutErr{}), 504, "gateway_timeout"},
		"cancelled":       {context.Canceled, 502, "bad_gateway"},
		"refused":         {errors.New("connection refused"), 502, "bad_gateway"},
		"body too large":  {&http.MaxBytesError{Limit: 1}, 413, "payload_too_large"},
		"a sentinel wins": {fmt.Errorf("dial: %w", problem.Sentinel(problem.ErrUnsafeURLUpstream, "unsafe")), 502, "unsafe_url"},
		"a problem wins":  {problem.ErrNeedsReauth, 409, "needs_reauth"},
	} {
		t.Run(name, func(t *testing.T) {
			p := problem.Upstream(tc.err)
			require.Equal(t, tc.status, p.Status)
			require.Equal(t, tc.code, p.Code)
		})
	}
}

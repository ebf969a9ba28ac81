package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The external benchmark's own parts, so that a harness bug cannot silently change what
// docs/BENCHMARKS.md reports. The benchmark itself never runs under go test.

func TestPercentileNearestRank(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	require.Zero(t, percentile(nil, 99))
	require.Equal(t, time.Millisecond, percentile(ms(1), 50))
	s := ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	require.Equal(t, 5*time.Millisecond, percentile(s, 50))
	require.Equal(t, 10*time.Millisecond, percentile(s, 99))
	require.Equal(t, 9*time.Millisecond, percentile(s, 90))
	require.Equal(t, time.Millisecond, percentile(s, 0.1))
	var hundred []int
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, i)
	}
	require.Equal(t, 99*time.Millisecond, percentile(ms(hundred...), 99), "exactly 99 of 100 at or below")
	require.Equal(t, 50*time.Millisecond, percentile(ms(hundred...), 50))
	require.Equal(t, 5*time.Millisecond, median(ms(9, 1, 5)))
}

// wrkOutput is wrk 4.1's --latency report with our script's done() lines.
const wrkOutput = `Running 5s test @ http://127.0.0.1:18999/v1/connections/conn_x/token
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.38ms    6.36ms  50.26ms   91.45%
    Req/Sec   677.15    228.32     1.19k    80.00%
  Latency Distribution
     50%  812.00us
     75%    4.60ms
     90%    9.20ms
     99%   38.37ms
  201354 requests in 5.00s, 687.76MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 1354
Requests/sec:  40270.84
Transfer/sec:    684.63KB
non2xx 503 audit_unavailable 1300
non2xx 429 rate_limited 50
`

func TestParseWrk(t *testing.T) {
	l, err := parseWrk(wrkOutput)
	require.NoError(t, err)
	require.EqualValues(t, 201354, l.Requests)
	require.InDelta(t, 5.0, l.Seconds, 1e-9)
	require.Equal(t, 812*time.Microsecond, l.P50)
	require.Equal(t, 38370*time.Microsecond, l.P99)
	require.Equal(t, map[string]int64{"503 audit_unavailable": 1300, "429 rate_limited": 50, "? unlisted": 4,
		"error: socket read": 3, "error: socket timeout": 2}, l.Non2xx)
	require.EqualValues(t, 1359, l.bad())

	clean := strings.NewReplacer("  Socket errors: connect 0, read 3, write 0, timeout 2\n", "",
		"  Non-2xx or 3xx responses: 1354\n", "", "non2xx 503 audit_unavailable 1300\n", "", "non2xx 429 rate_limited 50\n", "",
		"99%   38.37ms", "99%    1.02s").Replace(wrkOutput)
	l, err = parseWrk(clean)
	require.NoError(t, err)
	require.Empty(t, l.Non2xx)
	require.Equal(t, 1020*time.Millisecond, l.P99)

	_, err = parseWrk("unable to connect to 127.0.0.1:1 Connection refused")
	require.Error(t, err)
	_, err = parseWrk(strings.Replace(wrkOutput, "Latency Distribution", "", 1)[:strings.Index(wrkOutput, "50%")])
	require.Error(t, err)
}

func TestProblemCodeAndSummary(t *testing.T) {
	require.Equal(t, "audit_unavailable", problemCode([]byte(`{"type":"x","code":"audit_unavailable","status":503}`)))
	require.Equal(t, "-", problemCode([]byte(`<html>`)))
	require.Equal(t, "0", non2xxSummary([]load{{Requests: 5}}))
	require.Equal(t, "7 (5× 503 audit_unavailable, 2× 429 rate_limited)", non2xxSummary([]load{
		{Non2xx: map[string]int64{"503 audit_unavailable": 4, "429 rate_limited": 2}}, {Non2xx: map[string]int64{"503 audit_unavailable": 1}}}))
}

// TestGenerateCountsEveryAnswer runs the Go generator briefly against a server that
// refuses every third request: each refusal is counted by status and code, each request
// carries one of the keys.
func TestGenerateCountsEveryAnswer(t *testing.T) {
	var n, withKey atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer k") {
			withKey.Add(1)
		}
		if n.Add(1)%3 == 0 {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(503)
			_, _ = w.Write([]byte(`{"code":"audit_unavailable"}`))
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	l, err := generate(context.Background(), srv.URL, 2, 300*time.Millisecond, []string{"Bearer k1", "Bearer k2"})
	require.NoError(t, err)
	require.Positive(t, l.Requests)
	require.LessOrEqual(t, l.Requests, n.Load())
	require.Equal(t, n.Load(), withKey.Load())
	require.InDelta(t, l.Requests/3, l.Non2xx["503 audit_unavailable"], 2)
	require.Len(t, l.Non2xx, 1)
	require.Positive(t, l.P99)
	require.LessOrEqual(t, l.P50, l.P99)
}

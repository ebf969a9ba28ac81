package proxy

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// The access log (AUTHPIPE_ACCESS_LOG). At tens of thousands of token reads a second one
// line per request costs more than the rest of the middleware chain together: measured with
// BenchmarkAccessLog (JSON handler to io.Discard, 2 cores, parallel; 2026-12-07, a shared
// machine, 3 runs) the route costs 3.1–4.7 µs/op and 4 allocs with no access log,
// 4.4–5.8 µs/op and 4 allocs in summary mode, and 11.9–18.2 µs/op, 6 allocs, +496 B with a
// line per request. So by default a successful request is counted, not written:
//
//   - summary (the default): every non-2xx answer is one line, as before; 2xx answers are
//     counted per method, route template and status, and one "requests" line per group
//     is written for each interval (AccessLogInterval) that had any, with the count and
//     the mean and slowest latency.
//   - all: one line per request (what an operator tracing a single request wants).
//   - off: no access lines (the error log, "request failed" for 5xx, and the metrics stay).
//
// A line carries the route template (never the raw URL, whose query could carry a token),
// status, latency, request id, workspace and key id; a summary has no request ids.

// Access log modes.
const (
	AccessLogSummary = "summary"
	AccessLogAll     = "all"
	AccessLogOff     = "off"
)

// AccessLogInterval is how often the summary of successful requests is written.
const AccessLogInterval = 10 * time.Second

type accessKey struct {
	method, route string
	status        int
}

type accessStat struct {
	count, sumNanos, maxNanos atomic.Int64
}

// accessSummary counts successful requests until its timer writes them out. Groups are
// kept from one interval to the next (routes and statuses are few), so counting a request
// of a known group allocates nothing.
type accessSummary struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.RWMutex
	groups   map[accessKey]*accessStat
	armed    atomic.Bool
	since    atomic.Int64 // unix nanos: the start of the interval being counted
}

func (a *accessSummary) add(k accessKey, latency time.Duration) {
	a.mu.RLock()
	st := a.groups[k]
	a.mu.RUnlock()
	if st == nil {
		a.mu.Lock()
		if st = a.groups[k]; st == nil {
			st = &accessStat{}
			a.groups[k] = st
		}
		a.mu.Unlock()
	}
	n := int64(latency)
	st.count.Add(1)
	st.sumNanos.Add(n)
	for m := st.maxNanos.Load(); n > m && !st.maxNanos.CompareAndSwap(m, n); m = st.maxNanos.Load() {
	}
	if !a.armed.Load() && a.armed.CompareAndSwap(false, true) {
		a.since.Store(time.Now().UnixNano())
		time.AfterFunc(a.interval, a.flush) // once per interval that has traffic
	}
}

// flush writes one line per group counted since the interval began, and zeroes them.
func (a *accessSummary) flush() {
	a.armed.Store(false)
	since := time.Unix(0, a.since.Load()).UTC()
	a.mu.RLock()
	defer a.mu.RUnlock()
	for k, st := range a.groups {
		n := st.count.Swap(0)
		if n == 0 {
			continue
		}
		sum, slowest := st.sumNanos.Swap(0), st.maxNanos.Swap(0)
		a.log.LogAttrs(context.Background(), slog.LevelInfo, "requests",
			slog.String("method", k.method), slog.String("route", k.route), slog.Int("status", k.status),
			slog.Int64("count", n), slog.Float64("mean_latency_ms", millis(time.Duration(sum/n))),
			slog.Float64("max_latency_ms", millis(time.Duration(slowest))), slog.Time("since", since))
	}
}

// accessLog is the access-log middleware of mode (AccessLog* constants; "" is summary).
func accessLog(log *slog.Logger, mode string) gin.HandlerFunc {
	if mode == AccessLogOff {
		return func(c *gin.Context) { c.Next() }
	}
	var sum *accessSummary
	if mode != AccessLogAll {
		sum = &accessSummary{log: log, interval: AccessLogInterval, groups: map[accessKey]*accessStat{}}
	}
	return accessLogWith(log, sum)
}

// accessLogWith writes a line per request, or, with sum, per non-2xx request only.
func accessLogWith(log *slog.Logger, sum *accessSummary) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		if !log.Enabled(c.Request.Context(), slog.LevelInfo) {
			return // below the configured level: build nothing (the hot path's allocations)
		}
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		if sum != nil && status >= 200 && status < 300 {
			sum.add(accessKey{method: c.Request.Method, route: route, status: status}, time.Since(start))
			return
		}
		attrs := []slog.Attr{
			slog.String("method", c.Request.Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Float64("latency_ms", millis(time.Since(start))),
			slog.String("request_id", requestIDOf(c)),
		}
		if r := requestOf(c); r.authed {
			p := r.principal
			attrs = append(attrs, slog.String("workspace", p.WorkspaceID), slog.String("key_id", p.KeyID))
		}
		log.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", attrs...)
	}
}

// millis is d in milliseconds to the microsecond: durations in logs are _ms numbers.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

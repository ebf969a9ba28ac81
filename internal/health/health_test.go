package health_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/health"
)

// A probe is started at most once per Every however often Status is called, also
// concurrently, and its result is reported.
func TestStatusRunsAProbeAtMostOncePerInterval(t *testing.T) {
	var calls atomic.Int64
	boom := errors.New("down")
	c := health.New(health.Check{Name: "kms", Every: time.Hour, Timeout: time.Second,
		Probe: func(context.Context) error { calls.Add(1); return boom }})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				c.Status(100 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 1, calls.Load())
	require.ErrorIs(t, c.Status(0)["kms"], boom)
}

// A probe that hangs never holds Status beyond its wait: pending before its deadline,
// overdue after, and it is not started again while it runs.
func TestStatusNeverWaitsForAHangingProbe(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	defer close(release)
	c := health.New(
		health.Check{Name: "database", Every: time.Millisecond, Timeout: 300 * time.Millisecond,
			Probe: func(context.Context) error { calls.Add(1); <-release; return nil }},
		health.Check{Name: "kms", Every: time.Hour, Timeout: time.Second,
			Probe: func(context.Context) error { return nil }})
	start := time.Now()
	st := c.Status(50 * time.Millisecond)
	require.Less(t, time.Since(start), 250*time.Millisecond)
	require.ErrorIs(t, st["database"], health.ErrPending)
	require.NoError(t, st["kms"])
	time.Sleep(400 * time.Millisecond)
	require.ErrorIs(t, c.Status(50 * time.Millisecond)["database"], health.ErrOverdue)
	require.EqualValues(t, 1, calls.Load())
}

// Checks of one name report the first failure among them.
func TestChecksOfOneNameReportTogether(t *testing.T) {
	boom := errors.New("second KEK down")
	c := health.New(
		health.Check{Name: "kms", Every: time.Hour, Timeout: time.Second, Probe: func(context.Context) error { return nil }},
		health.Check{Name: "kms", Every: time.Hour, Timeout: time.Second, Probe: func(context.Context) error { return boom }})
	require.ErrorIs(t, c.Status(time.Second)["kms"], boom)
}

package jitter_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/jitter"
)

func TestInt64NStaysInRangeAndSpreads(t *testing.T) {
	require.Zero(t, jitter.Int64N(0))
	require.Zero(t, jitter.Int64N(-5))
	seen := map[int64]int{}
	for range 6000 {
		v := jitter.Int64N(6)
		require.True(t, v >= 0 && v < 6, "%d", v)
		seen[v]++
	}
	require.Len(t, seen, 6)
	for v, n := range seen {
		require.Greater(t, n, 700, "value %d drawn %d times of 6000: not uniform", v, n)
	}
	d := jitter.Duration(50 * time.Millisecond)
	require.True(t, d >= 0 && d < 50*time.Millisecond)
}

package awskms

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFullJitter(t *testing.T) {
	j := fullJitter{base: 100 * time.Millisecond, max: time.Second}
	for _, tc := range []struct {
		attempt int
		ceiling time.Duration
	}{{1, 200 * time.Millisecond}, {2, 400 * time.Millisecond}, {3, 800 * time.Millisecond}, {4, time.Second}, {63, time.Second}, {-1, time.Second}} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d, err := j.BackoffDelay(tc.attempt, nil)
			require.NoError(t, err)
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.Less(t, d, tc.ceiling, "attempt %d", tc.attempt)
			seen[d] = true
		}
		require.Greater(t, len(seen), 40, "attempt %d: delays are jittered", tc.attempt)
	}
	d, err := fullJitter{base: time.Millisecond}.BackoffDelay(1, nil)
	require.NoError(t, err)
	require.Zero(t, d, "a zero cap means no wait")
}

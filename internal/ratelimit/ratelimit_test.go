package ratelimit_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/ratelimit"
)

func TestSet(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }

	t.Run("allow, then wait", func(t *testing.T) {
		s := ratelimit.NewSet[string](ratelimit.Limit{Rate: 1, Burst: 2}, 10, clock)
		for range 2 {
			_, ok := s.Allow("a")
			require.True(t, ok)
		}
		wait, ok := s.Allow("a")
		require.False(t, ok)
		require.Equal(t, time.Second, wait)
		_, ok = s.Allow("b") // another key has its own bucket
		require.True(t, ok)
	})

	t.Run("check does not take, charge does", func(t *testing.T) {
		s := ratelimit.NewSet[string](ratelimit.Limit{Rate: 1, Burst: 1}, 10, clock)
		_, ok := s.Check("a")
		require.True(t, ok)
		_, ok = s.Check("a")
		require.True(t, ok)
		s.Charge("a")
		_, ok = s.Check("a")
		require.False(t, ok)
	})

	t.Run("negative rate is off", func(t *testing.T) {
		s := ratelimit.NewSet[string](ratelimit.Limit{Rate: -1}, 10, clock)
		for range 100 {
			_, ok := s.Allow("a")
			require.True(t, ok)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		s := ratelimit.NewSet[int](ratelimit.Limit{Rate: 1, Burst: 1}, 4, clock)
		for k := range 100 {
			_, ok := s.Allow(k)
			require.True(t, ok)
		}
	})
}

func TestOrDefault(t *testing.T) {
	def := ratelimit.Limit{Rate: 20, Burst: 100}
	require.Equal(t, def, ratelimit.Limit{}.OrDefault(def))
	require.Equal(t, ratelimit.Limit{Rate: 2.5, Burst: 3}, ratelimit.Limit{Rate: 2.5}.OrDefault(def))
	require.Equal(t, ratelimit.Limit{Rate: -1}, ratelimit.Limit{Rate: -1}.OrDefault(def))
}

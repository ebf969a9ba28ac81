package ratelimit_test

import (
	"net/netip"
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
		require.Equal(t, 4, s.Len())
	})

	// A full Set makes room by forgetting the least recently used key: a client that keeps
	// coming keeps its (empty) bucket however many new keys pass by.
	t.Run("full: the least recently used goes, not an active client", func(t *testing.T) {
		s := ratelimit.NewSet[int](ratelimit.Limit{Rate: 0.001, Burst: 1}, 4, clock)
		const active = -1
		_, ok := s.Allow(active)
		require.True(t, ok)
		for k := range 50 {
			_, ok := s.Allow(k) // a newcomer, in a full Set from the fourth on
			require.True(t, ok)
			_, ok = s.Allow(active)
			require.False(t, ok, "round %d: the active client's bucket was evicted", k)
		}
		// The order of use decides: 47, 48, 49 and the active client are held; touching 47
		// makes 48 the oldest, so a newcomer evicts 48 and keeps 47's empty bucket.
		_, ok = s.Check(47)
		require.False(t, ok)
		_, ok = s.Allow(1000)
		require.True(t, ok)
		_, ok = s.Check(47)
		require.False(t, ok, "47 was used more recently than 48")
		_, ok = s.Check(48)
		require.True(t, ok, "48 was the least recently used: forgotten, so full again")
	})
}

func TestClientPrefix(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"198.51.100.7", "198.51.100.7/32"},
		{"::ffff:198.51.100.7", "198.51.100.7/32"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
	} {
		require.Equal(t, tc.want, ratelimit.ClientPrefix(netip.MustParseAddr(tc.addr)).String(), tc.addr)
	}
	require.Equal(t, ratelimit.ClientPrefix(netip.MustParseAddr("2001:db8::1")),
		ratelimit.ClientPrefix(netip.MustParseAddr("2001:db8::ffff:1")), "one /64, one key")
	require.NotEqual(t, ratelimit.ClientPrefix(netip.MustParseAddr("2001:db8:0:0::1")),
		ratelimit.ClientPrefix(netip.MustParseAddr("2001:db8:0:1::1")), "the next /64 is another client")
	require.False(t, ratelimit.ClientPrefix(netip.Addr{}).IsValid())
}

func TestOrDefault(t *testing.T) {
	def := ratelimit.Limit{Rate: 20, Burst: 100}
	require.Equal(t, def, ratelimit.Limit{}.OrDefault(def))
	require.Equal(t, ratelimit.Limit{Rate: 2.5, Burst: 3}, ratelimit.Limit{Rate: 2.5}.OrDefault(def))
	require.Equal(t, ratelimit.Limit{Rate: -1}, ratelimit.Limit{Rate: -1}.OrDefault(def))
}

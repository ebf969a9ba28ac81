package store_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// ClaimDPoPJTI is the replay cache every replica shares: a (key, jti) claimed and not
// expired cannot be claimed again, by this store or by another on the same database.
func TestClaimDPoPJTI(t *testing.T) {
	ctx := context.Background()
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			var now atomic.Int64
			now.Store(time.Unix(1_800_000_000, 0).UnixNano())
			clock := func() time.Time { return time.Unix(0, now.Load()) }
			url := storetest.URL(t, d)
			open := func() *store.Store {
				s, err := store.Open(ctx, url, store.WithClock(clock))
				require.NoError(t, err)
				t.Cleanup(func() { _ = s.Close() })
				return s
			}
			a := open()
			_, err := a.Migrate(ctx)
			require.NoError(t, err)
			b := open() // a second replica
			exp := clock().Add(60 * time.Second)

			ok, err := a.ClaimDPoPJTI(ctx, "apk_1", "jti-1", exp)
			require.NoError(t, err)
			require.True(t, ok)
			ok, err = a.ClaimDPoPJTI(ctx, "apk_1", "jti-1", exp)
			require.NoError(t, err)
			require.False(t, ok, "replay on the same replica")
			ok, err = b.ClaimDPoPJTI(ctx, "apk_1", "jti-1", exp)
			require.NoError(t, err)
			require.False(t, ok, "replay on another replica")
			ok, err = b.ClaimDPoPJTI(ctx, "apk_2", "jti-1", exp)
			require.NoError(t, err)
			require.True(t, ok, "the jti of another key")

			// Concurrent claims of one pair: exactly one wins.
			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := a
					if i%2 == 1 {
						s = b
					}
					ok, err := s.ClaimDPoPJTI(ctx, "apk_1", "jti-race", exp)
					if err == nil && ok {
						wins.Add(1)
					}
				}()
			}
			wg.Wait()
			require.Equal(t, int32(1), wins.Load())

			// Past its expiry a row is dead: purged in batches, and taken over if claimed
			// again before the purge.
			for i := range 25 {
				ok, err := a.ClaimDPoPJTI(ctx, "apk_3", "j"+strconv.Itoa(i), clock().Add(time.Second))
				require.NoError(t, err)
				require.True(t, ok)
			}
			now.Add(int64(2 * time.Second))
			ok, err = b.ClaimDPoPJTI(ctx, "apk_3", "j0", clock().Add(time.Minute))
			require.NoError(t, err)
			require.True(t, ok, "an expired row is taken over")
			n, err := a.DeleteExpiredDPoPJTIs(ctx, clock(), 10)
			require.NoError(t, err)
			require.Equal(t, int64(24), n, "j1..j24, in batches of 10")
			n, err = a.DeleteExpiredDPoPJTIs(ctx, clock(), 10)
			require.NoError(t, err)
			require.Zero(t, n)
			ok, err = a.ClaimDPoPJTI(ctx, "apk_3", "j0", clock().Add(time.Minute))
			require.NoError(t, err)
			require.False(t, ok, "the taken-over row is live")
			ok, err = a.ClaimDPoPJTI(ctx, "apk_1", "jti-1", exp)
			require.NoError(t, err)
			require.False(t, ok, "live rows survive the purge")
		})
	}
}

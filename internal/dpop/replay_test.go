package dpop

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

func codeOf(err error) string {
	var p *problem.Problem
	if errors.As(err, &p) {
		return p.Code
	}
	return ""
}

// One key holder sending proofs as fast as it can uses up its own quota, never what the
// other keys need, with the default sizes.
func TestReplayFloodFromOneKey(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	c := newReplayCache(defaultWindow, 0, 0, nil)
	refused := 0
	for i := range 2 * defaultReplayMax / 5 { // 200,000: what filled the old cache
		if err := c.remember(ctx, "apk_flood", strconv.Itoa(i), now, now.Add(defaultWindow)); err != nil {
			require.Equal(t, "rate_limited", codeOf(err))
			refused++
		}
	}
	require.Equal(t, 2*defaultReplayMax/5-defaultReplayPerKey, refused, "the flood stops at its quota")
	require.NoError(t, c.remember(ctx, "apk_other", "x", now, now.Add(defaultWindow)), "another key is not blocked")
	require.Equal(t, "invalid_dpop_proof", codeOf(c.remember(ctx, "apk_other", "x", now, now.Add(defaultWindow))))
	// Once the flood's proofs expire, the key has its quota back.
	later := now.Add(2 * defaultWindow)
	require.NoError(t, c.remember(ctx, "apk_flood", "again", later, later.Add(defaultWindow)))
}

// Expiry drops whole generations: the work of a call does not grow with what is stored,
// and nothing is ever scanned.
func TestReplayExpiryIsO1(t *testing.T) {
	ctx := context.Background()
	start := time.Unix(1_800_000_000, 0)
	probesPerCall := func(n int) (uint64, uint64) {
		c := newReplayCache(time.Minute, n+1, 10*n+10, nil)
		for i := range n {
			now := start.Add(time.Duration(i%60) * time.Second) // spread over several generations
			require.NoError(t, c.remember(ctx, "apk_"+strconv.Itoa(i%7), strconv.Itoa(i), now, now.Add(time.Minute)))
		}
		// Past every expiry: the next call drops at most one generation and reads no stale one.
		later := start.Add(10 * time.Minute)
		p0, d0 := c.probes, c.dropped
		require.NoError(t, c.remember(ctx, "apk_0", "fresh", later, later.Add(time.Minute)))
		// Still refuses a replay, and the expired entries no longer count anywhere.
		require.Equal(t, "invalid_dpop_proof", codeOf(c.remember(ctx, "apk_0", "fresh", later, later.Add(time.Minute))))
		live := 0
		for _, g := range c.ring {
			if g.slot > c.slotOf(later)-1 {
				live += g.n
			}
		}
		require.Equal(t, 1, live)
		return c.probes - p0, c.dropped - d0
	}
	smallProbes, smallDropped := probesPerCall(10)
	bigProbes, bigDropped := probesPerCall(100_000)
	require.Equal(t, smallProbes, bigProbes, "the same reads for 10 and 100,000 entries")
	require.LessOrEqual(t, bigProbes, uint64(2*ringSize))
	require.LessOrEqual(t, smallDropped, uint64(1))
	require.Equal(t, smallDropped, bigDropped)
	require.Len(t, newReplayCache(time.Minute, 0, 0, nil).ring, ringSize, "a fixed number of generations")
}

// Generations: a proof is remembered until it expires, never less, whatever iat it has
// within the window, and whatever the clock does.
func TestReplayGenerations(t *testing.T) {
	ctx := context.Background()
	const w = time.Minute
	base := time.Unix(1_800_000_000, 0)
	c := newReplayCache(w, 0, 0, nil)
	// iat from -w to +w around now: expiry from now to now+2w.
	for i, d := range []time.Duration{-w, -w / 2, 0, w / 3, w, 2 * w} {
		exp := base.Add(d)
		if d < 0 {
			exp = base.Add(d + w)
		}
		id := strconv.Itoa(i)
		require.NoError(t, c.remember(ctx, "k", id, base, exp))
		// At every moment up to its expiry the jti is refused.
		for at := base; !at.After(exp); at = at.Add(7 * time.Second) {
			require.Equal(t, "invalid_dpop_proof", codeOf(c.remember(ctx, "k", id, at, exp)), "%s at %s", id, at.Sub(base))
		}
	}
	// The clock going back never loses a live entry.
	require.NoError(t, c.remember(ctx, "k", "late", base.Add(3*w), base.Add(5*w)))
	require.Equal(t, "invalid_dpop_proof", codeOf(c.remember(ctx, "k", "late", base.Add(2*w), base.Add(5*w))))
}

// Without a shared store the process's set is bounded and fails closed: no live jti is
// forgotten to make room.
func TestReplayLocalBound(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	c := newReplayCache(time.Minute, 3, 4, nil)
	for i := range 4 {
		require.NoError(t, c.remember(ctx, "apk_"+strconv.Itoa(i%2), strconv.Itoa(i), now, now.Add(time.Minute)))
	}
	err := c.remember(ctx, "apk_2", "x", now, now.Add(time.Minute))
	require.Equal(t, "rate_limited", codeOf(err))
	require.Equal(t, "invalid_dpop_proof", codeOf(c.remember(ctx, "apk_0", "0", now, now.Add(time.Minute))))
}

type countingStore struct {
	mu    sync.Mutex
	seen  map[string]bool
	calls int
}

func (s *countingStore) ClaimDPoPJTI(_ context.Context, keyID, jti string, _ time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.seen[keyID+"\x00"+jti] {
		return false, nil
	}
	s.seen[keyID+"\x00"+jti] = true
	return true, nil
}

// With a shared store, the store decides replays, and a key over its quota does not
// reach it.
func TestReplaySharedStore(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	st := &countingStore{seen: map[string]bool{}}
	replicaA, replicaB := newReplayCache(time.Minute, 5, 0, st), newReplayCache(time.Minute, 5, 0, st)
	require.NoError(t, replicaA.remember(ctx, "apk_1", "j", now, now.Add(time.Minute)))
	require.Equal(t, "invalid_dpop_proof", codeOf(replicaB.remember(ctx, "apk_1", "j", now, now.Add(time.Minute))))
	for i := range 20 {
		_ = replicaA.remember(ctx, "apk_1", strconv.Itoa(i), now, now.Add(time.Minute))
	}
	require.Equal(t, 2+4, st.calls, "the quota (5 per key) is checked before the store")
	require.Nil(t, replicaA.ring[replicaA.slotOf(now.Add(time.Minute))%ringSize].seen, "no local jti set")
	stErr := errors.New("database down")
	failing := newReplayCache(time.Minute, 0, 0, failingStore{stErr})
	require.ErrorIs(t, failing.remember(ctx, "apk_1", "k", now, now.Add(time.Minute)), stErr, "fails closed")
}

type failingStore struct{ err error }

func (f failingStore) ClaimDPoPJTI(context.Context, string, string, time.Time) (bool, error) {
	return false, f.err
}

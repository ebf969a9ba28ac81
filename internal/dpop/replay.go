package dpop

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// Replay defence. A proof's jti is remembered until the proof could no longer be accepted
// (iat + window) and a repeat is refused. Two parts:
//
//   - Per key, in this process: a ring of generations, each holding the proofs whose
//     expiry falls in one half-window. Each API key may have at most PerKey proofs in
//     flight (429 rate_limited beyond), so one key holder cannot fill what every other key
//     needs. A generation expires whole when its half-window is past: its maps are
//     replaced, never scanned, so expiry is O(1) and a lookup reads one entry of each of
//     the few generations (ringSize: 2·window/half-window + 2).
//   - The jti set: shared by every replica when a ReplayStore is set (the deployment's
//     database: a row per (key, jti) with its expiry, an insert that conflicts on a
//     replay), else the ring's own sets in this process, bounded by Max (429 beyond: the
//     cache fails closed, it never forgets a live jti to make room).

const (
	defaultReplayPerKey = 100_000
	defaultReplayMax    = 500_000
	// ringSize generations of span window/2 cover every live expiry: a proof accepted now
	// expires within [now, now+2·window], which touches at most 5 consecutive spans.
	ringSize = 6
)

// ReplayStore is a jti store shared by every replica. ClaimDPoPJTI records (keyID, jti)
// until expires; it reports false when the pair is already recorded and not expired.
type ReplayStore interface {
	ClaimDPoPJTI(ctx context.Context, keyID, jti string, expires time.Time) (bool, error)
}

var (
	errReplayed    = ErrInvalidProof.WithDetail("the proof's jti was used before")
	errReplayQuota = problem.ErrRateLimited.WithDetail("too many DPoP proofs in flight for this API key; retry shortly")
	errReplayFull  = problem.ErrRateLimited.WithDetail("too many DPoP proofs in flight; retry shortly")
)

type generation struct {
	slot int64                 // expiry times in ((slot-1)·span, slot·span]; live while now < slot·span
	n    int                   // proofs recorded
	keys map[string]int        // API key id → proofs recorded
	seen map[[16]byte]struct{} // digests of (key id, jti); nil with a shared store
}

type replayCache struct {
	span   time.Duration
	perKey int
	max    int
	shared ReplayStore

	mu   sync.Mutex
	ring [ringSize]generation
	// counters for tests: generations dropped, and generation reads
	dropped, probes uint64
}

func newReplayCache(window time.Duration, perKey, total int, shared ReplayStore) *replayCache {
	if perKey <= 0 {
		perKey = defaultReplayPerKey
	}
	if total <= 0 {
		total = defaultReplayMax
	}
	return &replayCache{span: max(window/2, time.Millisecond), perKey: perKey, max: total, shared: shared}
}

// slotOf is the generation of a proof that expires at t: the first span boundary after t.
func (c *replayCache) slotOf(t time.Time) int64 { return t.UnixNano()/int64(c.span) + 1 }

// remember records the proof (keyID, jti) that may be accepted until expires, or refuses
// it: a replay (ErrInvalidProof), a key over its quota or a full cache (rate_limited), or
// the shared store's error.
func (c *replayCache) remember(ctx context.Context, keyID, jti string, now, expires time.Time) error {
	var digest [16]byte
	if c.shared == nil {
		h := sha256.New()
		h.Write([]byte(keyID))
		h.Write([]byte{0})
		h.Write([]byte(jti))
		copy(digest[:], h.Sum(nil))
	}
	if err := c.record(keyID, digest, c.slotOf(now)-1, c.slotOf(expires)); err != nil {
		return err
	}
	if c.shared == nil {
		return nil
	}
	fresh, err := c.shared.ClaimDPoPJTI(ctx, keyID, jti, expires)
	if err != nil {
		return err
	}
	if !fresh {
		return errReplayed
	}
	return nil
}

// record checks the quota (and, without a shared store, the jti set and its bound) and
// records the proof in the generation of slot. Generations up to cur are expired.
func (c *replayCache) record(keyID string, digest [16]byte, cur, slot int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	count, total := 0, 0
	for i := range c.ring {
		g := &c.ring[i]
		if g.slot <= cur {
			continue // expired (or never used)
		}
		c.probes++
		count += g.keys[keyID]
		total += g.n
		if g.seen != nil {
			if _, ok := g.seen[digest]; ok {
				return errReplayed
			}
		}
	}
	if count >= c.perKey {
		return errReplayQuota.WithRetryAfter(int(c.span/time.Second) + 1)
	}
	if c.shared == nil && total >= c.max {
		return errReplayFull.WithRetryAfter(int(c.span/time.Second) + 1)
	}
	g := &c.ring[slot%ringSize]
	if g.slot < slot {
		// Expired: slots of one index are ringSize apart and live slots are fewer than
		// ringSize, so an older slot here is past. Drop it whole.
		if g.keys != nil {
			c.dropped++
		}
		*g = generation{slot: slot, keys: map[string]int{}}
		if c.shared == nil {
			g.seen = map[[16]byte]struct{}{}
		}
	}
	// g.slot > slot only after the clock went back: the later generation keeps the proof
	// longer than needed, never shorter.
	g.keys[keyID]++
	g.n++
	if g.seen != nil {
		g.seen[digest] = struct{}{}
	}
	return nil
}

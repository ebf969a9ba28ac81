// Package jitter draws the random delays of backoff, retry and scheduling jitter from
// crypto/rand, the project's one source of randomness (a predictable jitter would let an
// observer line up replicas' retries).
package jitter

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"time"
)

// Int64N returns a uniform value in [0, n); 0 when n <= 0.
func Int64N(n int64) int64 {
	if n <= 0 {
		return 0
	}
	// Rejection sampling keeps it uniform for every n.
	limit := ^uint64(0) - ^uint64(0)%uint64(n)
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
		if v := binary.LittleEndian.Uint64(b[:]); v < limit {
			return int64(v % uint64(n))
		}
	}
}

// Duration returns a uniform duration in [0, d); 0 when d <= 0.
func Duration(d time.Duration) time.Duration { return time.Duration(Int64N(int64(d))) }

// Bool returns a fair coin.
func Bool() bool { return Int64N(2) == 1 }

// Sleep waits d, or until ctx ends (then it returns ctx's error): the wait between a
// backoff's attempts.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

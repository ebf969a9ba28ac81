//go:build !race

package proxy

// raceEnabled: the race detector's instrumentation allocates on its own, and under it
// sync.Pool drops items at random, so allocation counts are pinned only without it.
const raceEnabled = false

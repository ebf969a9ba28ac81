//go:build !race

package proxy_test

// raceEnabled: the race detector's instrumentation allocates on its own, so allocation
// counts are pinned only without it.
const raceEnabled = false

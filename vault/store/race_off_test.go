//go:build !race

package store_test

// readBurst is the size of the read-burst tests (API.md: 100,000 reads).
const readBurst = 100_000

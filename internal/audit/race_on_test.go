//go:build race

package audit_test

// readBurst is the size of the read-burst tests: smaller under the race detector (make test
// runs the full size without it).
const readBurst = 10_000

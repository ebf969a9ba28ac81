//go:build failpoints

package refresher

import (
	"os"
	"time"
)

func loadFailpoint() failpoint { return failpoint{name: os.Getenv("AUTHPIPE_FAILPOINT")} }

// testOverrides lets the crash tests shorten the lease (AUTHPIPE_FAILPOINT_LEASE_TTL), so
// a dead replica's lease runs out within the test.
func testOverrides(c *Config) {
	if d, err := time.ParseDuration(os.Getenv("AUTHPIPE_FAILPOINT_LEASE_TTL")); err == nil && d > 0 {
		c.LeaseTTL = d
	}
}

//go:build !failpoints

package refresher

// loadFailpoint: production builds have no failpoints.
func loadFailpoint() failpoint { return failpoint{} }

// testOverrides: production builds take no test settings.
func testOverrides(*Config) {}

//go:build !failpoints

package refresher

// loadFailpoint: production builds have no failpoints.
func loadFailpoint() failpoint { return failpoint{} }

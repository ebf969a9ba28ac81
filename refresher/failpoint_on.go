//go:build failpoints

package refresher

import "os"

func loadFailpoint() failpoint { return failpoint{name: os.Getenv("AUTHPIPE_FAILPOINT")} }

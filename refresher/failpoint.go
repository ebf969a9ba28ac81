package refresher

import "os"

// failpoint kills the process at a named point of a refresh, for the crash tests: after
// the provider answered and before the commit ("after_provider"), or just after the commit
// ("after_commit"). It is armed only in binaries built with the failpoints build tag
// (failpoint_on.go) and only by AUTHPIPE_FAILPOINT; in every other build it does nothing.
type failpoint struct{ name string }

func (f failpoint) hit(name string) {
	if f.name != "" && f.name == name {
		os.Exit(3)
	}
}

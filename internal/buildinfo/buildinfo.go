// Package buildinfo is the one place that says which build is running: the version,
// revision and build date that `authpipe-proxy version`, the authpipe_build_info metric
// and the control-plane User-Agent and heartbeat report.
//
// Release builds set them with the linker (the Makefile and the Dockerfile do):
//
//	go build -ldflags "-X github.com/authpipe/authpipe-proxy/internal/buildinfo.version=v1.2.3 \
//	  -X github.com/authpipe/authpipe-proxy/internal/buildinfo.revision=$(git rev-parse HEAD) \
//	  -X github.com/authpipe/authpipe-proxy/internal/buildinfo.date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/authpipe-proxy
//
// A plain `go build` in a checkout falls back to what the Go toolchain stamps
// (runtime/debug.ReadBuildInfo: the module version, vcs.revision, vcs.time, vcs.modified).
package buildinfo

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"sync"
)

// Set by -ldflags "-X …"; empty in a plain build.
var (
	version  string
	revision string
	date     string
)

// Unknown is reported for what neither the linker nor the toolchain stamped.
const Unknown = "unknown"

// Info describes the running binary.
type Info struct {
	Version   string // v1.2.3, or "devel" for an unversioned build
	Revision  string // the VCS commit, "+dirty" appended for a modified tree; or Unknown
	Date      string // RFC 3339 build (or commit) time; or Unknown
	GoVersion string
}

// String is the one-line form `authpipe-proxy --version` prints.
func (i Info) String() string {
	return "authpipe-proxy " + i.Version + " (revision " + i.Revision + ", built " + i.Date + ", " + i.GoVersion + ")"
}

// UserAgent is the User-Agent of the proxy's own calls (the control plane).
func (i Info) UserAgent() string { return "authpipe-proxy/" + i.Version }

// versionRE is what a version may look like wherever it is reported (the control plane's
// heartbeat pattern); anything else is replaced by "devel".
var versionRE = regexp.MustCompile(`^[0-9A-Za-z.+_-]{1,64}$`)

var get = sync.OnceValue(func() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, revision, date, bi)
})

// Get returns the running binary's build information.
func Get() Info { return get() }

// resolve combines the linker's values with the toolchain's (bi may be nil).
func resolve(version, revision, date string, bi *debug.BuildInfo) Info {
	var modified bool
	if bi != nil {
		if version == "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if revision == "" {
					revision = s.Value
				}
			case "vcs.time":
				if date == "" {
					date = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && revision != "" && revision == vcsRevision(bi) {
			revision += "+dirty"
		}
	}
	if !versionRE.MatchString(version) {
		version = "devel"
	}
	if revision == "" {
		revision = Unknown
	}
	if date == "" {
		date = Unknown
	}
	return Info{Version: version, Revision: revision, Date: date, GoVersion: runtime.Version()}
}

func vcsRevision(bi *debug.BuildInfo) string {
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}

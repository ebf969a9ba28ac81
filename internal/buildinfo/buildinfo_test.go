package buildinfo

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolve(t *testing.T) {
	vcs := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}}
	cases := map[string]struct {
		v, r, d string
		bi      *debug.BuildInfo
		want    Info
	}{
		"linker wins":          {"v1.2.3", "deadbeef", "2026-12-07T00:00:00Z", vcs, Info{Version: "v1.2.3", Revision: "deadbeef", Date: "2026-12-07T00:00:00Z"}},
		"go build in checkout": {"", "", "", vcs, Info{Version: "devel", Revision: "abc123+dirty", Date: "2026-01-02T03:04:05Z"}},
		"go install module":    {"", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}, Info{Version: "v0.4.0", Revision: Unknown, Date: Unknown}},
		"nothing":              {"", "", "", nil, Info{Version: "devel", Revision: Unknown, Date: Unknown}},
		"unsafe version":       {"v1 2\n", "", "", nil, Info{Version: "devel", Revision: Unknown, Date: Unknown}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := resolve(c.v, c.r, c.d, c.bi)
			got.GoVersion = ""
			require.Equal(t, c.want, got)
		})
	}
	require.Equal(t, "authpipe-proxy/devel", Info{Version: "devel"}.UserAgent())
}

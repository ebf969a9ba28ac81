package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The image's HEALTHCHECK is the probe command, its labels are the OCI ones, and the
// build arguments reach internal/buildinfo's variables (TestVersionFromLdflags shows
// that -X on them works).
func TestDockerfileBuildInfoLabelsHealthcheck(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	require.NoError(t, err)
	df := string(raw)
	require.Equal(t, 2, strings.Count(df, `HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/authpipe-proxy", "probe"]`), "both images")
	for _, l := range []string{"title", "source", "licenses", "version", "revision", "created"} {
		require.Equal(t, 2, strings.Count(df, "org.opencontainers.image."+l+"="), l)
	}
	for _, v := range []string{"version", "revision", "date"} {
		require.Equal(t, 2, strings.Count(df, "internal/buildinfo."+v+"="), "both builds set %s", v)
	}
	require.Equal(t, 2, strings.Count(df, `-ldflags "-s -w ${BUILDINFO_LDFLAGS}"`))
	for _, m := range regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1) {
		require.Regexp(t, `^(\$\{(GO|STATIC|DEBIAN)_IMAGE\}|source)$`, m[1], "base images come from the pinnable ARGs")
	}
}

// probe: exit 0 when /readyz answers 200, 1 when nothing answers; an unspecified listen
// host (the image's 0.0.0.0) is probed on loopback.
func TestProbe(t *testing.T) {
	addr := freeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	_, stderr, code := cli(t, t.TempDir(), []string{"AUTHPIPE_LISTEN_ADDR=0.0.0.0:" + port}, "probe", "--timeout", "2s")
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "probe:")

	startServe(t, t.TempDir(), addr)
	waitFor(t, "http://"+addr+"/readyz", 20*time.Second, 200)
	stdout, stderr, code := cli(t, t.TempDir(), []string{"AUTHPIPE_LISTEN_ADDR=0.0.0.0:" + port}, "probe")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "/readyz 200\n", stdout)
	stdout, _, code = cli(t, t.TempDir(), nil, "probe", "--addr", addr, "--path", "/healthz")
	require.Equal(t, 0, code)
	require.Equal(t, "/healthz 200\n", stdout)
	stdout, _, code = cli(t, t.TempDir(), nil, "probe", "http://"+addr+"/readyz") // the chart's helm test
	require.Equal(t, 0, code)
	require.Equal(t, "/readyz 200\n", stdout)
	_, _, code = cli(t, t.TempDir(), nil, "probe", "http://"+addr+"/metrics")
	require.Equal(t, 2, code)
}

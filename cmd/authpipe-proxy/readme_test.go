package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tryItBlock is the first ```sh block under the README's "## Try it".
func tryItBlock(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(raw), "\n## Try it\n")
	require.True(t, ok, "README has a Try it section")
	_, block, ok := strings.Cut(section, "```sh\n")
	require.True(t, ok, "Try it has a sh block")
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	return block
}

// TestReadmeTryIt runs the README's Try-it block as written, in an empty directory, with
// bash -e: `make run` is the freshly built binary's serve (what the Makefile's run target
// runs through go run), on a free port. Every curl must succeed, the token must be read
// with the tokens:read key and come back, and the audit chain must verify.
func TestReadmeTryIt(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is needed to run the README's Try it block")
		}
		t.Skip("!!! SKIPPING: no curl to run the README's Try it block")
	}
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	require.NoError(t, err)
	require.Contains(t, string(mk), "run:\n\tgo run ./cmd/authpipe-proxy serve\n", "the make shim below stands for this target")

	block := tryItBlock(t)
	require.Contains(t, block, `"Authorization: Bearer $APP_KEY" "$URL/v1/connections/$CONN/token"`, "the token is read with the narrow key")

	bin := t.TempDir()
	shim := "#!/bin/sh\n[ \"$1\" = run ] || exit 2\nexec " + binary + " serve\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "make"), []byte(shim), 0o755))
	addr := freeAddr(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", block+"\nkill %1\nwait %1 || true\n")
	cmd.Dir = t.TempDir()
	cmd.Env = cleanEnv("PATH="+bin+":"+os.Getenv("PATH"), "AUTHPIPE_LISTEN_ADDR="+addr,
		"AUTHPIPE_PUBLIC_URL=http://"+addr, "AUTHPIPE_SHUTDOWN_DELAY=0s", "AUTHPIPE_LOG_LEVEL=warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the server is its child: stop them together
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	require.Len(t, lines, 2, "the token, then the audit verification: %s", stdout.String())
	require.Contains(t, lines[0], "sk_test_TryIt0123456789abcdef", "the credential, read with the tokens:read key")
	require.Contains(t, lines[1], `"ok":true`)
}

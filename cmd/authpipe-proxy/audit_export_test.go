package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/vault/store"
)

// audit verify --export writes a workspace's chain that --offline verifies with no
// database at all (the settings point at none), trusting only the named checkpoint key;
// an edited export fails.
func TestAuditExportVerifiesOffline(t *testing.T) {
	dir := t.TempDir()
	run := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Dir = dir
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	env := cleanEnv()
	for i := 0; i < 3; i++ {
		out, err := run(env, "apikey", "create", "--name", "k", "--scopes", "tokens:read")
		require.NoError(t, err, out)
	}
	out, err := run(env, "audit", "checkpoint")
	require.NoError(t, err, out)
	var cp struct{ KID string `json:"kid"` }
	require.NoError(t, json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &cp))
	require.True(t, strings.HasPrefix(cp.KID, "ckp_"), out)

	file := filepath.Join(dir, "default.audit.jsonl")
	out, err = run(env, "audit", "verify", "--export", file, "--workspace", store.DefaultWorkspaceID)
	require.NoError(t, err, out)
	require.Contains(t, out, "exported")
	out, err = run(env, "audit", "verify", "--export", file, "--workspace", store.DefaultWorkspaceID)
	require.Error(t, err, "an export never overwrites a file: %s", out)

	// Offline: no database, no KEK — settings that would create or open one are absent.
	offlineDir := t.TempDir()
	offline := func(args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Dir = offlineDir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + offlineDir}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err = offline("audit", "verify", "--offline", file, "--checkpoint-key", cp.KID)
	require.NoError(t, err, out)
	require.Contains(t, out, "\tok\t")
	entries, _ := os.ReadDir(offlineDir)
	require.Empty(t, entries, "offline verification created nothing (no database, no key)")

	out, err = offline("audit", "verify", "--offline", file)
	require.Error(t, err, "no trusted key: %s", out)
	require.Contains(t, out, "--checkpoint-key")

	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	require.GreaterOrEqual(t, len(lines), 5)
	lines[2] = strings.Replace(lines[2], `"outcome":"success"`, `"outcome":"failure"`, 1)
	tampered := filepath.Join(dir, "tampered.jsonl")
	require.NoError(t, os.WriteFile(tampered, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	out, err = offline("audit", "verify", "--offline", tampered, "--checkpoint-key", cp.KID)
	require.Error(t, err, out)
	require.Contains(t, out, "BROKEN")
}

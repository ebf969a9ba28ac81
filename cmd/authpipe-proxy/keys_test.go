package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// TestCheckpointsVerifyAcrossKeyRotation: checkpoints signed before and after `keys rotate
// --purpose checkpoint` all verify with `audit verify --checkpoint FILE`; pinning one key
// with --checkpoint-key refuses the other's.
func TestCheckpointsVerifyAcrossKeyRotation(t *testing.T) {
	dir := t.TempDir()
	cpFile := filepath.Join(dir, "checkpoints.jsonl")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Dir = dir
		cmd.Env = cleanEnv("AUTHPIPE_AUDIT_CHECKPOINT_FILE=" + cpFile)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		require.NoError(t, err, out)
		return out
	}
	mustRun("apikey", "create", "--name", "before", "--scopes", "tokens:read")
	mustRun("audit", "checkpoint")
	out := mustRun("keys", "rotate", "--purpose", "checkpoint")
	require.Regexp(t, `^checkpoint: new active key pk_\S+; verify-only: pk_audit_checkpoint_1\n$`, out)
	mustRun("apikey", "create", "--name", "after", "--scopes", "tokens:read")
	mustRun("audit", "checkpoint")

	raw, err := os.ReadFile(cpFile)
	require.NoError(t, err)
	var kids []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var cp audit.Checkpoint
		require.NoError(t, json.Unmarshal([]byte(line), &cp))
		if len(kids) == 0 || kids[len(kids)-1] != cp.KeyID {
			kids = append(kids, cp.KeyID)
		}
	}
	require.Len(t, kids, 2, "signed before and after the rotation, by different keys")

	out = mustRun("audit", "verify", "--checkpoint", cpFile)
	require.Contains(t, out, "ws_default\tok")
	require.Regexp(t, regexp.MustCompile(`ws_default\tok\t\d+ events\thead \S+\t2 checkpoint\(s\)`), out)

	// Pinning one key: the other key's checkpoints are refused.
	out, err = run("audit", "verify", "--checkpoint", cpFile, "--checkpoint-key", kids[1])
	require.Error(t, err, out)
	require.Contains(t, out, "not trusted")

	out, err = run("keys", "rotate", "--purpose", "nope")
	require.Error(t, err, out)
}

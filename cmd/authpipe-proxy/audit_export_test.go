package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
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
	var cp struct {
		KID string `json:"kid"`
	}
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

	// A chain a database writer rewrote (every hash recomputed after an edit) is not
	// blessed with a fresh signature: the export checks it against the last signed
	// verification first, refuses, and leaves no file.
	out, err = run(env, "audit", "verify") // records a signed verification of the head
	require.NoError(t, err, out)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "data", "authpipe.db"))
	require.NoError(t, err)
	var evs []audit.Event
	require.NoError(t, s.DB().Table("audit_events").Where("workspace_id = ?", store.DefaultWorkspaceID).Order("seq").Find(&evs).Error)
	seq, prev := int64(0), audit.GenesisHash
	for i, e := range evs {
		if i == 0 {
			e.Outcome = audit.Failure
		}
		audit.Link(&e, seq, prev)
		require.NoError(t, s.DB().Exec("UPDATE audit_events SET outcome = ?, prev_hash = ?, hash = ? WHERE id = ?",
			e.Outcome, e.PrevHash, e.Hash, e.ID).Error)
		seq, prev = e.Seq, e.Hash
	}
	require.NoError(t, s.DB().Exec("UPDATE audit_heads SET hash = ? WHERE workspace_id = ?", prev, store.DefaultWorkspaceID).Error)
	require.NoError(t, s.Close())
	rewritten := filepath.Join(dir, "rewritten.jsonl")
	out, err = run(env, "audit", "verify", "--export", rewritten, "--workspace", store.DefaultWorkspaceID)
	require.Error(t, err, out)
	require.Contains(t, out, "does not verify")
	_, statErr := os.Stat(rewritten)
	require.True(t, os.IsNotExist(statErr), "no file is left behind")
}

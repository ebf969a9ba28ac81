package main

import (
	"context"
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

// TestAuditVerifyWithCheckpoints: someone with database access deletes the tail of the
// chain (and fixes audit_heads), or rewrites an event and recomputes every later hash: the
// database alone still verifies, `audit verify --checkpoint FILE` does not.
func TestAuditVerifyWithCheckpoints(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, s *store.Store)
		reason string
	}{
		{"deleted tail", func(t *testing.T, s *store.Store) {
			var e audit.Event
			require.NoError(t, s.DB().Table("audit_events").Where("workspace_id = ? AND seq = 2", store.DefaultWorkspaceID).Take(&e).Error)
			require.NoError(t, s.DB().Exec("DELETE FROM audit_events WHERE workspace_id = ? AND seq > 2", store.DefaultWorkspaceID).Error)
			require.NoError(t, s.DB().Exec("UPDATE audit_heads SET seq = 2, hash = ?, event_id = ? WHERE workspace_id = ?",
				e.Hash, e.ID, store.DefaultWorkspaceID).Error)
		}, "tail was deleted"},
		{"re-chained", func(t *testing.T, s *store.Store) {
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
		}, "rewritten"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cpFile := filepath.Join(dir, "checkpoints.jsonl")
			run := func(args ...string) (string, error) {
				cmd := exec.Command(binary, args...)
				cmd.Dir = dir
				cmd.Env = cleanEnv("AUTHPIPE_AUDIT_CHECKPOINT_FILE=" + cpFile)
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			for i := 0; i < 3; i++ {
				out, err := run("apikey", "create", "--name", "k", "--scopes", "tokens:read")
				require.NoError(t, err, out)
			}
			out, err := run("audit", "checkpoint")
			require.NoError(t, err, out)
			require.Contains(t, out, `"workspace_id":"ws_default"`)
			require.Contains(t, out, `"kid":"ckp_`)
			out, err = run("audit", "verify", "--checkpoint", cpFile)
			require.NoError(t, err, out)
			require.Contains(t, out, "ws_default\tok")
			out, err = run("purge", "--dry-run")
			require.NoError(t, err, out)
			require.Contains(t, out, "would delete: 0 connection(s)")

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "data", "authpipe.db"))
			require.NoError(t, err)
			tc.tamper(t, s)
			require.NoError(t, s.Close())

			out, err = run("audit", "verify")
			require.NoError(t, err, "the database alone agrees with itself: %s", out)
			out, err = run("audit", "verify", "--checkpoint", cpFile)
			require.Error(t, err, out)
			require.Equal(t, 1, err.(*exec.ExitError).ExitCode())
			require.Contains(t, out, "BROKEN")
			require.Contains(t, out, tc.reason)

			// A checkpoint file signed by another key is refused outright.
			other := filepath.Join(dir, "forged.jsonl")
			seed := make([]byte, 32)
			sg, err := audit.NewSigner(seed)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(other, sg.Sign(store.DefaultWorkspaceID, 1, strings.Repeat("0", 64), "evt_x", time.Now()).Line(), 0o600))
			out, err = run("audit", "verify", "--checkpoint", other)
			require.Error(t, err)
			require.Contains(t, out, "not trusted")
		})
	}
}

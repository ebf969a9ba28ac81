package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// auditCheckpointCommand is `authpipe-proxy audit checkpoint`: sign the head of every
// workspace's chain now, append the checkpoints to AUTHPIPE_AUDIT_CHECKPOINT_FILE (when
// set) and print them, one JSON line each, for operators to ship.
func auditCheckpointCommand() *command {
	return &command{
		path: "audit checkpoint", summary: "sign every chain head; append to AUTHPIPE_AUDIT_CHECKPOINT_FILE and print",
		run: func(ctx context.Context, c *call) error {
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			cps, err := a.Checkpoints(ctx)
			if err != nil {
				return err
			}
			for _, cp := range cps {
				if _, err := c.stdout.Write(cp.Line()); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// checkpointVerify is `audit verify --checkpoint FILE`: every workspace's chain against
// the signed checkpoints in FILE, signed by one of the deployment's checkpoint keys (the
// active one or any rotated one), or by the key --checkpoint-key names.
// A workspace of the file without a chain must have been deleted on record (a
// workspace.deleted event in the default chain).
func checkpointVerify(ctx context.Context, a *app.App, path, kid, only string, asJSON bool, stdout io.Writer) (broken int, err error) {
	trusted := []string{kid}
	if kid == "" { // every checkpoint key of the deployment: rotated ones never retire
		if trusted, err = a.Admin.CheckpointKeys().TrustedKeyIDs(ctx); err != nil {
			return 0, fmt.Errorf("the deployment's checkpoint keys: %w", err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cps, err := audit.ReadCheckpoints(f, trusted...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	results, err := a.Admin.VerifyAuditCheckpoints(ctx, cps, trusted, only)
	for _, res := range results {
		if !res.OK {
			broken++
		}
		switch {
		case asJSON:
			b, _ := json.Marshal(map[string]any{"workspace": res.WorkspaceID, "ok": res.OK, "events": res.Events, "head": res.Head,
				"first_bad_event": res.FirstBadEvent, "reason": res.Reason, "checkpoints": res.Checkpoints, "start_seq": res.StartSeq})
			fmt.Fprintln(stdout, string(b))
		case res.OK:
			fmt.Fprintf(stdout, "%s\tok\t%d events\thead %s\t%d checkpoint(s)\t%s\n", res.WorkspaceID, res.Events, res.Head,
				res.Checkpoints, res.Reason)
		default:
			fmt.Fprintf(stdout, "%s\tBROKEN\tfirst bad event %s\t%s\n", res.WorkspaceID, res.FirstBadEvent, res.Reason)
		}
	}
	return broken, err
}

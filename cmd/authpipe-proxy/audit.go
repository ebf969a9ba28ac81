package main

import (
	"context"
	"flag"
	"fmt"
	"io"
)

func auditVerifyCommand() *command {
	var ws, checkpoints, checkpointKey, out string
	var asJSON bool
	return &command{
		path: "audit verify", usage: "[--workspace WS] [--checkpoint FILE] [--output json]",
		summary: "verify every workspace's audit chain (against signed checkpoints)",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ws, "workspace", "", "verify one workspace (default: all)")
			outputFlag(fs, &out)
			fs.BoolVar(&asJSON, "json", false, "the same as --output json")
			fs.StringVar(&checkpoints, "checkpoint", "", "file of signed checkpoints (AUTHPIPE_AUDIT_CHECKPOINT_FILE): detects a deleted tail or a rewritten chain")
			fs.StringVar(&checkpointKey, "checkpoint-key", "", "trust checkpoints signed by this kid (default: the deployment's key)")
		},
		args: func(args []string) error {
			if len(args) != 0 {
				return usageError{msg: "audit verify: takes no arguments"}
			}
			return checkOutput("audit verify", out)
		},
		run: func(ctx context.Context, c *call) error {
			asJSON = asJSON || out == "json"
			a, err := c.open(ctx, io.Discard)
			if err != nil {
				return err
			}
			defer a.Close()
			if checkpoints != "" { // audit_checkpoint.go
				broken, err := checkpointVerify(ctx, a, checkpoints, checkpointKey, ws, asJSON, c.stdout)
				if err == nil && broken > 0 {
					err = fmt.Errorf("%d audit chain(s) broken", broken)
				}
				return err
			}
			results, err := a.Admin.VerifyAuditChains(ctx, ws)
			broken := 0
			for _, res := range results {
				w := res.WorkspaceID
				if !res.OK {
					broken++
				}
				if asJSON {
					_ = printJSONLine(c.stdout, map[string]any{"workspace": w, "ok": res.OK, "events": res.Events, "head": res.Head, "first_bad_event": res.FirstBadEvent})
				} else if res.OK {
					fmt.Fprintf(c.stdout, "%s\tok\t%d events\thead %s\n", w, res.Events, res.Head)
				} else {
					fmt.Fprintf(c.stdout, "%s\tBROKEN\tfirst bad event %s\n", w, res.FirstBadEvent)
				}
			}
			if err != nil {
				return err
			}
			if broken > 0 {
				return fmt.Errorf("%d audit chain(s) broken", broken)
			}
			return nil
		},
	}
}

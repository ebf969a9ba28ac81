package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/audit"
)

func auditVerifyCommand() *command {
	var ws, checkpoints, checkpointKey, out, export, offline string
	var asJSON bool
	return &command{
		path: "audit verify", usage: "[--workspace WS] [--checkpoint FILE] [--output json] | --export FILE --workspace WS | --offline FILE --checkpoint-key KID",
		summary: "verify every workspace's audit chain (against signed checkpoints); export one, or verify an export offline",
		doc: "--export writes one workspace's chain, with a checkpoint of its head signed now, to FILE " +
			"(docs/formats.md, \"Audit export file\"). --offline verifies such a file without the server or its " +
			"database, trusting only the checkpoint key --checkpoint-key names (see GET /v1/audit/checkpoint-keys).",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ws, "workspace", "", "verify one workspace (default: all)")
			outputFlag(fs, &out)
			fs.BoolVar(&asJSON, "json", false, "the same as --output json")
			fs.StringVar(&checkpoints, "checkpoint", "", "file of signed checkpoints (AUTHPIPE_AUDIT_CHECKPOINT_FILE): detects a deleted tail or a rewritten chain")
			fs.StringVar(&checkpointKey, "checkpoint-key", "", "trust checkpoints signed by this kid (default: the deployment's key)")
			fs.StringVar(&export, "export", "", "write the --workspace chain and a signed checkpoint of its head to FILE")
			fs.StringVar(&offline, "offline", "", "verify an export FILE without the database (needs --checkpoint-key)")
		},
		args: func(args []string) error {
			if len(args) != 0 {
				return usageError{msg: "audit verify: takes no arguments"}
			}
			switch {
			case export != "" && (offline != "" || checkpoints != ""):
				return usageError{msg: "audit verify: --export goes alone with --workspace"}
			case export != "" && ws == "":
				return usageError{msg: "audit verify --export: name the workspace with --workspace"}
			case offline != "" && checkpoints != "":
				return usageError{msg: "audit verify: --offline and --checkpoint do not go together"}
			case offline != "" && checkpointKey == "":
				return usageError{msg: "audit verify --offline: name the trusted checkpoint key with --checkpoint-key (the key inside a file proves nothing)"}
			}
			return checkOutput("audit verify", out)
		},
		run: func(ctx context.Context, c *call) error {
			asJSON = asJSON || out == "json"
			if offline != "" {
				return verifyExportFile(offline, checkpointKey, asJSON, c.stdout)
			}
			a, err := c.open(ctx, io.Discard)
			if err != nil {
				return err
			}
			defer a.Close()
			if export != "" {
				return exportChain(ctx, a, ws, export, c.stdout)
			}
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

// exportChain writes one workspace's chain to path (created 0600, never over an existing
// file); a failed export leaves no file behind.
func exportChain(ctx context.Context, a *app.App, ws, path string, stdout io.Writer) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := a.Admin.ExportAudit(ctx, ws, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return err
	}
	fmt.Fprintf(stdout, "%s\texported\t%d events\tto %s\n", ws, n, path)
	return nil
}

// verifyExportFile is `audit verify --offline FILE --checkpoint-key KID`: no database.
func verifyExportFile(path, kid string, asJSON bool, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := audit.VerifyExport(f, kid)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case asJSON:
		_ = printJSONLine(stdout, map[string]any{"workspace": res.WorkspaceID, "ok": res.OK, "events": res.Events, "head": res.Head,
			"first_bad_event": res.FirstBad, "reason": res.Reason})
	case res.OK:
		fmt.Fprintf(stdout, "%s\tok\t%d events\thead %s\tcheckpoint %s\n", res.WorkspaceID, res.Events, res.Head, kid)
	default:
		fmt.Fprintf(stdout, "%s\tBROKEN\tfirst bad event %s\t%s\n", res.WorkspaceID, res.FirstBad, res.Reason)
	}
	if !res.OK {
		return fmt.Errorf("the exported audit chain is broken")
	}
	return nil
}

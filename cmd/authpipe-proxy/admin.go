package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/admin"
)

func apikey(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{msg: "apikey: want create, list or revoke"}
	}
	var name, scopes, ws string
	rest, cfgArgs, err := sub("apikey "+args[0], args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "cli", "a name for the key")
		fs.StringVar(&scopes, "scopes", "admin", "comma-separated scopes")
		fs.StringVar(&ws, "workspace", admin.DefaultWorkspaceID, "workspace id")
	})
	if err != nil {
		return err
	}
	a, err := openReady(ctx, cfgArgs)
	if err != nil {
		return err
	}
	defer a.Close()
	switch args[0] {
	case "create":
		k, err := a.Admin.CreateAPIKey(ctx, admin.KeyRequest{WorkspaceID: ws, Name: name, Scopes: strings.Split(scopes, ","), Actor: "cli"})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "id:     %s\nkey:    %s\nscopes: %s\n\nThe key is shown only now: store it in your secret manager.\n",
			k.ID, k.Key.Reveal(), strings.Join(k.Scopes, ","))
	case "list":
		keys, err := a.Admin.ListAPIKeys(ctx, ws)
		if err != nil {
			return err
		}
		for _, k := range keys {
			fmt.Fprintf(stdout, "%s\t%s\tap_%s…\t%s\t%s\n", k.ID, k.Name, k.Prefix, strings.Join(k.Scopes, ","), k.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"))
		}
	case "revoke":
		if len(rest) != 1 {
			return usageError{msg: "apikey revoke: want one key id"}
		}
		if err := a.Admin.RevokeAPIKey(ctx, ws, rest[0], "cli"); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "revoked", rest[0])
	default:
		return usageError{msg: "apikey: want create, list or revoke"}
	}
	return nil
}

func workspace(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "set-audit-retention" {
		return workspaceRetention(ctx, args[1:], stdout)
	}
	if len(args) == 0 || args[0] != "create" {
		return usageError{msg: "workspace: want create NAME or set-audit-retention WORKSPACE_ID DURATION|default"}
	}
	rest, cfgArgs, err := sub("workspace create", args[1:], func(*flag.FlagSet) {})
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError{msg: "workspace create: want one NAME"}
	}
	a, err := openReady(ctx, cfgArgs)
	if err != nil {
		return err
	}
	defer a.Close()
	w, err := a.Admin.CreateWorkspace(ctx, rest[0], "cli")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "workspace: %s (%s)\nadmin key id: %s\nadmin key:    %s\n\nThe key is shown only now.\n",
		w.ID, w.Name, w.APIKey.ID, w.APIKey.Key.Reveal())
	return nil
}

func auditCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "checkpoint" {
		return auditCheckpoint(ctx, args[1:], stdout) // audit_checkpoint.go
	}
	if len(args) == 0 || args[0] != "verify" {
		return usageError{msg: "audit: want verify or checkpoint"}
	}
	var ws, checkpoints, checkpointKey string
	var asJSON bool
	_, cfgArgs, err := sub("audit verify", args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&ws, "workspace", "", "verify one workspace (default: all)")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		fs.StringVar(&checkpoints, "checkpoint", "", "file of signed checkpoints (AUTHPIPE_AUDIT_CHECKPOINT_FILE): detects a deleted tail or a rewritten chain")
		fs.StringVar(&checkpointKey, "checkpoint-key", "", "trust checkpoints signed by this kid (default: the deployment's key)")
	})
	if err != nil {
		return err
	}
	a, err := open(ctx, cfgArgs, io.Discard)
	if err != nil {
		return err
	}
	defer a.Close()
	if checkpoints != "" { // audit_checkpoint.go
		broken, err := checkpointVerify(ctx, a, checkpoints, checkpointKey, ws, asJSON, stdout)
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
			b, _ := json.Marshal(map[string]any{"workspace": w, "ok": res.OK, "events": res.Events, "head": res.Head, "first_bad_event": res.FirstBadEvent})
			fmt.Fprintln(stdout, string(b))
		} else if res.OK {
			fmt.Fprintf(stdout, "%s\tok\t%d events\thead %s\n", w, res.Events, res.Head)
		} else {
			fmt.Fprintf(stdout, "%s\tBROKEN\tfirst bad event %s\n", w, res.FirstBadEvent)
		}
	}
	if err != nil {
		return err
	}
	if broken > 0 {
		return fmt.Errorf("%d audit chain(s) broken", broken)
	}
	return nil
}

// workspaceRetention sets one workspace's audit retention, overriding
// AUTHPIPE_AUDIT_RETENTION ("default" removes the override).
func workspaceRetention(ctx context.Context, args []string, stdout io.Writer) error {
	rest, cfgArgs, err := sub("workspace set-audit-retention", args, func(*flag.FlagSet) {})
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return usageError{msg: "workspace set-audit-retention: want WORKSPACE_ID DURATION|default"}
	}
	var d *time.Duration
	if rest[1] != "default" {
		v, err := time.ParseDuration(rest[1])
		if err != nil {
			return usageError{msg: "workspace set-audit-retention: " + strconv.Quote(rest[1]) + " is not a duration (e.g. 720h) or default"}
		}
		d = &v
	}
	a, err := openReady(ctx, cfgArgs)
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := a.Admin.SetAuditRetention(ctx, rest[0], d, "cli"); err != nil {
		if errors.Is(err, admin.ErrInvalidRetention) {
			return usageError{msg: "workspace set-audit-retention: audit retention must be from 24h to 87600h, or default"}
		}
		return err
	}
	if d == nil {
		fmt.Fprintf(stdout, "%s: audit retention is the deployment's (%s)\n", rest[0], a.Config.AuditRetention)
	} else {
		fmt.Fprintf(stdout, "%s: audit retention %s\n", rest[0], *d)
	}
	return nil
}

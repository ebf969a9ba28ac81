package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"

	"github.com/authpipe/authpipe-proxy/admin"
)

// endUserActor is the actor of the CLI's erasures in the audit chain.
const endUserActor = "cli"

// endUser is `authpipe-proxy end-user erase|export [--workspace WS] [--] ID`: the GDPR erasure
// (revoke at the providers, then hard-delete every connection of the end user) and export
// (their connections' metadata as JSON) of the API, for any id creation accepts.
func endUser(ctx context.Context, args []string, stdout io.Writer) error {
	const want = "end-user: want erase ID or export ID"
	if len(args) == 0 || args[0] != "erase" && args[0] != "export" {
		return usageError{msg: want}
	}
	// After "--" everything is the id (one that starts with "-" too).
	flags, after := args[1:], []string(nil)
	if i := slices.Index(flags, "--"); i >= 0 {
		flags, after = flags[:i], flags[i+1:]
	}
	var ws string
	rest, cfgArgs, err := sub("end-user "+args[0], flags, func(fs *flag.FlagSet) {
		fs.StringVar(&ws, "workspace", admin.DefaultWorkspaceID, "workspace id")
	})
	if err != nil {
		return err
	}
	rest = append(rest, after...)
	if len(rest) != 1 {
		return usageError{msg: "end-user " + args[0] + ": want one end user id"}
	}
	id := rest[0]
	if !admin.ValidEndUserID(id) {
		return usageError{msg: "end-user " + args[0] + ": the id must be 1–256 printable characters"}
	}
	a, err := openReady(ctx, cfgArgs)
	if err != nil {
		return err
	}
	defer a.Close()
	if args[0] == "export" {
		exp, err := a.Admin.ExportEndUser(ctx, ws, id)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(exp)
	}
	n, _, err := a.Revocations.EraseEndUser(ctx, ws, id, endUserActor)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "erased %d connection(s) of the end user in workspace %s\n", n, ws)
	return nil
}

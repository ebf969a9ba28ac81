package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/authpipe/authpipe-proxy/admin"
)

// endUserActor is the actor of the CLI's erasures in the audit chain.
const endUserActor = "cli"

// endUserCommand is `authpipe-proxy end-user erase|export [--workspace WS] [--] ID`: the
// GDPR erasure (revoke at the providers, then hard-delete every connection of the end
// user) and export (their connections' metadata as JSON) of the API, for any id creation
// accepts. After "--" everything is the id (one that starts with "-" too).
func endUserCommand(verb string) *command {
	var ws string
	c := &command{
		path: "end-user " + verb, usage: "[--workspace WS] [--] ID",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ws, "workspace", admin.DefaultWorkspaceID, "workspace id")
		},
		args: func(args []string) error {
			if len(args) != 1 {
				return usageError{msg: "end-user " + verb + ": want one end user id"}
			}
			if !admin.ValidEndUserID(args[0]) {
				return usageError{msg: "end-user " + verb + ": the id must be 1–256 printable characters"}
			}
			return nil
		},
	}
	if verb == "export" {
		c.summary = "everything held about the end user (metadata, JSON); -- before an id starting with -"
		c.run = func(ctx context.Context, c *call) error {
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			exp, err := a.Admin.ExportEndUser(ctx, ws, c.args[0])
			if err != nil {
				return err
			}
			enc := json.NewEncoder(c.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(exp)
		}
		return c
	}
	c.summary = "GDPR erasure: revoke and hard-delete every connection of the end user"
	c.run = func(ctx context.Context, c *call) error {
		a, err := c.openReady(ctx)
		if err != nil {
			return err
		}
		defer a.Close()
		n, _, err := a.Revocations.EraseEndUser(ctx, ws, c.args[0], endUserActor)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "erased %d connection(s) of the end user in workspace %s\n", n, ws)
		return nil
	}
	return c
}

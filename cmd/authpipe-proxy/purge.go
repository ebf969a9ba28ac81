package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
)

// purgeCommand is `authpipe-proxy purge [--dry-run]`: what the server's purge job does, now.
func purgeCommand() *command {
	var dryRun bool
	return &command{
		path: "purge", usage: "[--dry-run]", summary: "hard-delete what is past AUTHPIPE_RETENTION / AUTHPIPE_AUDIT_RETENTION",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&dryRun, "dry-run", false, "count what would be deleted; change nothing")
		},
		run: func(ctx context.Context, c *call) error {
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			r, err := a.Purge(ctx, dryRun)
			if err != nil {
				return err
			}
			verb := "deleted"
			if dryRun {
				verb = "would delete"
			}
			fmt.Fprintf(c.stdout, "%s: %d connection(s) past AUTHPIPE_RETENTION (%s), %d audit event(s) past AUTHPIPE_AUDIT_RETENTION (%s)",
				verb, r.Connections, a.Config.Retention, r.AuditEvents, a.Config.AuditRetention)
			if !dryRun {
				fmt.Fprintf(c.stdout, ", %d expired connect session(s)", r.Sessions)
			}
			fmt.Fprintln(c.stdout)
			if len(r.BrokenChains) > 0 {
				return fmt.Errorf("audit chain(s) that do not verify were not pruned: %s", strings.Join(r.BrokenChains, ", "))
			}
			return nil
		},
	}
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// purge is `authpipe-proxy purge [--dry-run]`: what the server's purge job does, now.
func purge(ctx context.Context, args []string, stdout io.Writer) error {
	var dryRun bool
	rest, cfgArgs, err := sub("purge", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "count what would be deleted; change nothing")
	})
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return usageError{msg: "purge: takes no arguments"}
	}
	a, err := openReady(ctx, cfgArgs)
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
	fmt.Fprintf(stdout, "%s: %d connection(s) past AUTHPIPE_RETENTION (%s), %d audit event(s) past AUTHPIPE_AUDIT_RETENTION (%s)",
		verb, r.Connections, a.Config.Retention, r.AuditEvents, a.Config.AuditRetention)
	if !dryRun {
		fmt.Fprintf(stdout, ", %d expired connect session(s)", r.Sessions)
	}
	fmt.Fprintln(stdout)
	if len(r.BrokenChains) > 0 {
		return fmt.Errorf("audit chain(s) that do not verify were not pruned: %s", strings.Join(r.BrokenChains, ", "))
	}
	return nil
}

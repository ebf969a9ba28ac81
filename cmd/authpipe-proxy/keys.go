package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/admin"
)

// keysRotateCommand is `authpipe-proxy keys rotate --purpose P`: rotate one of the
// proxy's own keys (docs/proxy-keys.md). The new key is active at once on this process;
// running replicas pick it up within their key-set refresh interval (30 s) or on the
// first kid they do not know, and the old key keeps verifying until nothing can still
// need it.
func keysRotateCommand() *command {
	var purpose, ws string
	return &command{
		path: "keys rotate", usage: "--purpose " + strings.Join(admin.RotatablePurposes, "|"),
		summary: "rotate a proxy key: " + strings.Join(admin.RotatablePurposes, "|"),
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&purpose, "purpose", "", strings.Join(admin.RotatablePurposes, "|"))
			fs.StringVar(&ws, "workspace", admin.DefaultWorkspaceID, "the workspace whose webhook secret rotates (--purpose webhook)")
		},
		args: func(args []string) error {
			if len(args) != 0 || !slices.Contains(admin.RotatablePurposes, purpose) {
				return usageError{msg: "keys rotate: want --purpose " + strings.Join(admin.RotatablePurposes, "|")}
			}
			return nil
		},
		run: func(ctx context.Context, c *call) error {
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			if purpose == admin.PurposeWebhook {
				r, err := a.Admin.RotateWebhookSecret(ctx, ws, "cli")
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "webhook (%s): new secret %s (kid %s)\nuntil %s deliveries carry signatures under both %s and %s.\n\nThe secret is shown only now: give it to your receiver.\n",
					ws, r.Secret.Reveal(), r.KID, r.RetireAfter.Format(time.RFC3339), r.KID, r.PreviousKID)
				return nil
			}
			r, err := a.Admin.RotateProxyKey(ctx, purpose, "cli")
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "%s: new active key %s; verify-only: %s\n", r.Purpose, r.KID, strings.Join(r.Rotated, ", "))
			return nil
		},
	}
}

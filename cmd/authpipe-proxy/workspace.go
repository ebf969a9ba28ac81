package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/authpipe/authpipe-proxy/admin"
)

func workspaceCreateCommand() *command {
	return &command{
		path: "workspace create", usage: "NAME", summary: "create a workspace and its first admin key",
		args: func(args []string) error {
			if len(args) != 1 {
				return usageError{msg: "workspace create: want one NAME"}
			}
			return nil
		},
		run: func(ctx context.Context, c *call) error {
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			w, err := a.Admin.CreateWorkspace(ctx, c.args[0], "cli")
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "workspace: %s (%s)\nadmin key id: %s\nadmin key:    %s\n\nThe key is shown only now.\n",
				w.ID, w.Name, w.APIKey.ID, w.APIKey.Key.Reveal())
			return nil
		},
	}
}

// workspaceRetentionCommand sets one workspace's audit retention, overriding
// AUTHPIPE_AUDIT_RETENTION ("default" removes the override).
func workspaceRetentionCommand() *command {
	var d *time.Duration
	return &command{
		path: "workspace set-audit-retention", usage: "WORKSPACE_ID DURATION|default",
		summary: "a workspace's own audit retention (e.g. 720h, or default)",
		args: func(args []string) error {
			if len(args) != 2 {
				return usageError{msg: "workspace set-audit-retention: want WORKSPACE_ID DURATION|default"}
			}
			if args[1] != "default" {
				v, err := time.ParseDuration(args[1])
				if err != nil {
					return usageError{msg: "workspace set-audit-retention: " + strconv.Quote(args[1]) + " is not a duration (e.g. 720h) or default"}
				}
				d = &v
			}
			return nil
		},
		run: func(ctx context.Context, c *call) error {
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			ws := c.args[0]
			if _, err := a.Admin.SetAuditRetention(ctx, ws, d, "cli"); err != nil {
				if errors.Is(err, admin.ErrInvalidRetention) {
					return usageError{msg: "workspace set-audit-retention: audit retention must be from 24h to 87600h, or default"}
				}
				return err
			}
			if d == nil {
				fmt.Fprintf(c.stdout, "%s: audit retention is the deployment's (%s)\n", ws, a.Config.AuditRetention)
			} else {
				fmt.Fprintf(c.stdout, "%s: audit retention %s\n", ws, *d)
			}
			return nil
		},
	}
}

package main

import (
	"context"
	"fmt"
)

// workspaceFreezeCommand freezes (or, with frozen false, unfreezes) a workspace: its token
// reads and forwarded requests answer 423 workspace_frozen (docs/incident-response.md).
func workspaceFreezeCommand(frozen bool) *command {
	verb, summary := "freeze", "stop serving a workspace's credentials (423 workspace_frozen) until unfrozen"
	if !frozen {
		verb, summary = "unfreeze", "serve a frozen workspace's credentials again"
	}
	return &command{
		path: "workspace " + verb, usage: "WORKSPACE_ID", summary: summary,
		args: func(args []string) error {
			if len(args) != 1 {
				return usageError{msg: "workspace " + verb + ": want one WORKSPACE_ID"}
			}
			return nil
		},
		run: func(ctx context.Context, c *call) error {
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			w, err := a.Admin.FreezeWorkspace(ctx, c.args[0], frozen, "cli")
			if err != nil {
				return err
			}
			if w.FrozenAt != nil {
				fmt.Fprintf(c.stdout, "%s: frozen since %s\n", w.ID, w.FrozenAt.Format("2006-01-02T15:04:05Z"))
			} else {
				fmt.Fprintf(c.stdout, "%s: not frozen\n", w.ID)
			}
			return nil
		},
	}
}

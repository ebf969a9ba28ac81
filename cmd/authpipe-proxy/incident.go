package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/refresher"
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

// incidentRotateCommand: `incident rotate` replaces and revokes the access tokens an
// incident exposed (refresher.Incidents; docs/incident-response.md). Resumable: a run that
// stopped is finished with --incident INC_ID.
func incidentRotateCommand() *command {
	var ws, apiKey, provider, endUser, incident, out string
	var since time.Duration
	var all, dryRun bool
	return &command{
		path:    "incident rotate",
		usage:   "(--api-key APK | --provider P | --end-user U | --all | --incident INC) [--since 24h] [--workspace WS] [--dry-run] [--output json]",
		summary: "replace and revoke every access token a key (provider, end user, workspace) was served (resumable)",
		doc: "For every connection the key (provider, end user) read within --since, from the audit chain's token.read " +
			"events — or, with --all, every OAuth connection of the workspace — the token is refreshed, then the exposed " +
			"access token revoked at the provider (RFC 7009). Providers that cannot revoke are listed: their tokens stay " +
			"valid until they expire. Re-run with --incident to finish an interrupted rotation; nothing is rotated twice.",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ws, "workspace", admin.DefaultWorkspaceID, "the workspace")
			fs.StringVar(&apiKey, "api-key", "", "the leaked API key's id (apk_...)")
			fs.StringVar(&provider, "provider", "", "a provider's name")
			fs.StringVar(&endUser, "end-user", "", "an end user's id")
			fs.BoolVar(&all, "all", false, "every OAuth connection of the workspace (the database was copied)")
			fs.StringVar(&incident, "incident", "", "resume this incident (inc_...)")
			fs.DurationVar(&since, "since", 24*time.Hour, "the window of reads, back from now")
			fs.BoolVar(&dryRun, "dry-run", false, "count what would be rotated; change nothing")
			outputFlag(fs, &out)
		},
		args: func(args []string) error {
			if len(args) != 0 {
				return usageError{msg: "incident rotate: unexpected argument " + args[0]}
			}
			n := 0
			for _, set := range []bool{apiKey != "", provider != "", endUser != "", all, incident != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				return usageError{msg: "incident rotate: want exactly one of --api-key, --provider, --end-user, --all or --incident"}
			}
			if since < time.Minute || since > 2160*time.Hour {
				return usageError{msg: "incident rotate: --since must be from 1m to 2160h"}
			}
			return checkOutput("incident rotate", out)
		},
		run: func(ctx context.Context, c *call) error {
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			bar := newIncidentBar(c.stderr, isTerminal(c.stderr))
			res, err := a.Incidents.Rotate(ctx, refresher.IncidentRequest{WorkspaceID: ws, IncidentID: incident,
				APIKeyID: apiKey, Provider: provider, EndUserID: endUser, Workspace: all, Since: since, DryRun: dryRun,
				Actor: "cli", Progress: bar.report})
			bar.finish()
			if err != nil {
				return err
			}
			if out == "json" {
				return json.NewEncoder(c.stdout).Encode(res)
			}
			if res.IncidentID != "" {
				fmt.Fprintf(c.stdout, "incident: %s\n", res.IncidentID)
			}
			verb := "rotated"
			if dryRun {
				verb = "would rotate (dry run)"
			}
			fmt.Fprintf(c.stdout, "%s: %d connections, %d revoked, %d refreshed\n", verb, res.Connections, res.Revoked, res.Refreshed)
			if len(res.NotRevocable) > 0 {
				fmt.Fprintf(c.stdout, "not revocable (valid until they expire): %s\n", strings.Join(res.NotRevocable, ", "))
			}
			if len(res.Failed) > 0 {
				fmt.Fprintf(c.stdout, "not finished: %d connections; run again with --incident %s\n", len(res.Failed), res.IncidentID)
				return fmt.Errorf("incident rotate: %d connections not finished", len(res.Failed))
			}
			return nil
		},
	}
}

// incidentBar shows a rotation's progress: a bar on a terminal, else a line every
// plainEvery and the last.
type incidentBar struct {
	w    io.Writer
	bar  *progressbar.ProgressBar
	last time.Time
	done int
	of   int
}

func newIncidentBar(w io.Writer, tty bool) *incidentBar {
	b := &incidentBar{w: w}
	if tty {
		b.bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("incident rotate"),
			progressbar.OptionShowCount(), progressbar.OptionSetItsString("connections"), progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30), progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	}
	return b
}

func (b *incidentBar) report(done, total int) {
	b.done, b.of = done, total
	if b.bar != nil {
		if b.bar.GetMax() != total {
			b.bar.ChangeMax(max(total, 1))
		}
		_ = b.bar.Set(done)
		return
	}
	if now := time.Now(); now.Sub(b.last) >= plainEvery {
		b.last = now
		fmt.Fprintf(b.w, "incident rotate: %d/%d connections\n", done, total)
	}
}

func (b *incidentBar) finish() {
	if b.bar != nil {
		_ = b.bar.Finish()
		return
	}
	if b.of > 0 {
		fmt.Fprintf(b.w, "incident rotate: %d/%d connections\n", b.done, b.of)
	}
}

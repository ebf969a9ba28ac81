package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/authpipe/authpipe-proxy/admin"
)

// outputFlag declares --output text|json on a command that lists things.
func outputFlag(fs *flag.FlagSet, out *string) {
	fs.StringVar(out, "output", "text", "text or json (one JSON object per line)")
}

func checkOutput(path, out string) error {
	if out != "text" && out != "json" {
		return usageError{msg: path + ": --output must be text or json"}
	}
	return nil
}

// printJSONLine writes v as one line of JSON.
func printJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// apikeyCreateCommand makes an API key. Its scopes are required and checked by the rule
// of POST /v1/api-keys (admin.ValidScopes, admin.ValidKeyName); as from a key without
// workspaces:write, the CLI cannot grant workspaces:write (only AUTHPIPE_BOOTSTRAP_API_KEY
// holds it).
func apikeyCreateCommand() *command {
	var name, scopes, ws string
	return &command{
		path: "apikey create", usage: "--scopes S[,S…] [--name N] [--workspace WS]",
		summary: "create an API key (printed once)",
		doc:     "Scopes: " + strings.Join(grantableScopes(), ", ") + " (API.md).",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "cli", "a name for the key")
			fs.StringVar(&scopes, "scopes", "", "comma-separated scopes (required), e.g. tokens:read")
			fs.StringVar(&ws, "workspace", admin.DefaultWorkspaceID, "workspace id")
		},
		args: func(args []string) error {
			if len(args) != 0 {
				return usageError{msg: "apikey create: takes no arguments (--scopes, --name, --workspace)"}
			}
			if err := admin.ValidKeyName(name); err != nil {
				return usageError{msg: "apikey create: --name: 1–63 letters, digits, spaces, dots, dashes or underscores"}
			}
			if scopes == "" {
				return usageError{msg: "apikey create: --scopes is required (" + strings.Join(grantableScopes(), ", ") + ")"}
			}
			if err := admin.ValidScopes(splitScopes(scopes), false); err != nil {
				return usageError{msg: "apikey create: --scopes: " + problemText(err)}
			}
			return nil
		},
		run: func(ctx context.Context, c *call) error {
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			k, err := a.Admin.CreateAPIKey(ctx, admin.KeyRequest{WorkspaceID: ws, Name: name, Scopes: splitScopes(scopes), Actor: "cli"})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "id:     %s\nkey:    %s\nscopes: %s\n\nThe key is shown only now: store it in your secret manager.\n",
				k.ID, k.Key.Reveal(), strings.Join(k.Scopes, ","))
			return nil
		},
	}
}

// grantableScopes are the scopes the CLI can grant: all but workspaces:write.
func grantableScopes() []string {
	var out []string
	for _, s := range admin.AllScopes {
		if s != admin.ScopeWorkspacesWrite {
			out = append(out, s)
		}
	}
	return out
}

func splitScopes(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func apikeyListCommand() *command {
	var ws, out string
	return &command{
		path: "apikey list", usage: "[--workspace WS] [--output json]", summary: "list API keys",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ws, "workspace", admin.DefaultWorkspaceID, "workspace id")
			outputFlag(fs, &out)
		},
		args: func(args []string) error {
			if len(args) != 0 {
				return usageError{msg: "apikey list: takes no arguments"}
			}
			return checkOutput("apikey list", out)
		},
		run: func(ctx context.Context, c *call) error {
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			keys, err := a.Admin.ListAPIKeys(ctx, ws)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if out == "json" {
					if err := printJSONLine(c.stdout, k); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(c.stdout, "%s\t%s\tap_%s…\t%s\t%s\n", k.ID, k.Name, k.Prefix, strings.Join(k.Scopes, ","), k.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"))
			}
			return nil
		},
	}
}

func apikeyRevokeCommand() *command {
	var ws string
	return &command{
		path: "apikey revoke", usage: "[--workspace WS] ID", summary: "revoke an API key",
		flags: func(fs *flag.FlagSet) { fs.StringVar(&ws, "workspace", admin.DefaultWorkspaceID, "workspace id") },
		args: func(args []string) error {
			if len(args) != 1 {
				return usageError{msg: "apikey revoke: want one key id"}
			}
			return nil
		},
		run: func(ctx context.Context, c *call) error {
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			if err := a.Admin.RevokeAPIKey(ctx, ws, c.args[0], "cli"); err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, "revoked", c.args[0])
			return nil
		},
	}
}

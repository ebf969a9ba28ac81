package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/config"
)

// configCheckCommand is `authpipe-proxy config check`: the configuration is valid (the
// dispatcher has loaded it: a bad one exits 2 naming the variables), the database
// answers, and each keyring's current KEK wraps and unwraps. It creates nothing (no
// database, no local key file) and changes nothing; it exits 1 with the reason when a
// dependency fails. Unknown AUTHPIPE_* variables are reported as warnings.
func configCheckCommand() *command {
	var timeout time.Duration
	return &command{
		path: "config check", usage: "[--timeout D]",
		summary: "validate the settings, reach the database and the KMS (exit 1 with the reason)",
		flags: func(fs *flag.FlagSet) {
			fs.DurationVar(&timeout, "timeout", 10*time.Second, "how long each dependency may take to answer")
		},
		args: func(args []string) error {
			if len(args) != 0 {
				return usageError{msg: "config check: takes no arguments"}
			}
			if timeout <= 0 {
				return usageError{msg: "config check: --timeout must be positive"}
			}
			return nil
		},
		run: func(ctx context.Context, c *call) error {
			fmt.Fprintf(c.stdout, "settings\tok\tprofile %s, database %s\n", c.cfg.Profile, c.cfg.DatabaseDialect())
			for _, w := range config.UnknownVariables(os.Environ()) {
				fmt.Fprintf(c.stdout, "settings\twarning\t%s\n", w)
			}
			a, err := c.openExisting(ctx)
			if err != nil {
				fmt.Fprintf(c.stdout, "open\tFAILED\t%s\n", oneLine(err.Error()))
				return fmt.Errorf("config check: %w", err)
			}
			defer a.Close()
			checks := []struct {
				name  string
				probe func(context.Context) error
			}{
				{"database", a.Store.Ping},
				{"kms " + string(a.Creds.Purpose()), a.Creds.Ping},
				{"kms " + string(a.Secrets.Purpose()), a.Secrets.Ping},
			}
			failed := 0
			for _, ch := range checks {
				cctx, cancel := context.WithTimeout(ctx, timeout)
				err := ch.probe(cctx)
				cancel()
				if err != nil {
					failed++
					fmt.Fprintf(c.stdout, "%s\tFAILED\t%s\n", ch.name, oneLine(err.Error()))
					continue
				}
				fmt.Fprintf(c.stdout, "%s\tok\n", ch.name)
			}
			if failed > 0 {
				return fmt.Errorf("config check: %d of %d checks failed", failed, len(checks))
			}
			return nil
		},
	}
}

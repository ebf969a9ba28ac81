package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/buildinfo"
	"github.com/authpipe/authpipe-proxy/internal/config"
)

func serveCommand() *command {
	return &command{
		path: "serve", summary: "start the server",
		help: serveHelp,
		run: func(ctx context.Context, c *call) error {
			a, err := c.open(ctx, c.stderr)
			if err != nil {
				return err
			}
			defer a.Close()
			for _, w := range config.UnknownVariables(os.Environ()) {
				a.Log.Warn(w)
			}
			return a.Serve(ctx, nil)
		},
	}
}

func migrateCommand() *command {
	return &command{
		path: "migrate", summary: "apply database migrations",
		run: func(ctx context.Context, c *call) error {
			a, err := c.open(ctx, io.Discard)
			if err != nil {
				return err
			}
			defer a.Close()
			applied, err := a.Migrate(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "applied %d migration(s)\n", len(applied))
			return nil
		},
	}
}

// versionCommand prints the build (internal/buildinfo), then this deployment's id, which
// it reads from the configured database (AUTHPIPE_DATABASE_URL): "unknown" with the
// reason when the database cannot say (not reachable, or neither serve nor migrate has
// run yet). Only the build needs no database; the command fails only on bad arguments or
// settings. `authpipe-proxy --version` prints the build alone.
func versionCommand() *command {
	return &command{
		path: "version", summary: "print the build (version, revision, date) and the deployment id",
		run: func(ctx context.Context, c *call) error {
			fmt.Fprintln(c.stdout, buildinfo.Get())
			id, err := app.DeploymentID(ctx, c.cfg)
			switch {
			case errors.Is(err, app.ErrNoDeploymentID):
				fmt.Fprintln(c.stdout, "deployment: unknown (created by the first serve or migrate)")
			case err != nil: // not quoted: a database error may name the URL
				fmt.Fprintln(c.stdout, "deployment: unknown (the database at "+config.EnvDatabaseURL+" cannot be read)")
			default:
				fmt.Fprintln(c.stdout, "deployment:", id)
			}
			return nil
		},
	}
}

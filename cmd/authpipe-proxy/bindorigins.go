package main

import (
	"context"
	"fmt"
)

// bindOriginsCommand is `authpipe-proxy bind-origins`: the origin-binding migration the
// server runs at start-up, now (resumable; safe beside a running server).
func bindOriginsCommand() *command {
	return &command{
		path: "bind-origins", summary: "bind credentials stored before origin binding (the server does it at start-up)",
		run: func(ctx context.Context, c *call) error {
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			r, err := a.BindOrigins(ctx)
			fmt.Fprintf(c.stdout, "bound %d client secret(s) and %d credential(s); left unbound %d and %d (refused until bound)\n",
				r.SecretsBound, r.CredentialsBound, r.SecretsSkipped, r.CredentialsSkipped)
			return err
		},
	}
}

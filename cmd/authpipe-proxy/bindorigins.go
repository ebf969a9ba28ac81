package main

import (
	"context"
	"flag"
	"fmt"
	"io"
)

// bindOrigins is `authpipe-proxy bind-origins`: the origin-binding migration the server
// runs at start-up, now (resumable; safe beside a running server).
func bindOrigins(ctx context.Context, args []string, stdout io.Writer) error {
	rest, cfgArgs, err := sub("bind-origins", args, func(*flag.FlagSet) {})
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return usageError{msg: "bind-origins: takes no arguments"}
	}
	a, err := openReady(ctx, cfgArgs)
	if err != nil {
		return err
	}
	defer a.Close()
	r, err := a.BindOrigins(ctx)
	fmt.Fprintf(stdout, "bound %d client secret(s) and %d credential(s); left unbound %d and %d (refused until bound)\n",
		r.SecretsBound, r.CredentialsBound, r.SecretsSkipped, r.CredentialsSkipped)
	return err
}

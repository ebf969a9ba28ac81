// Command authpipe-proxy is the Authpipe data plane: it holds third-party credentials
// for an application's end users, keeps them fresh and hands them out on request.
//
//	authpipe-proxy serve                      start the server
//	authpipe-proxy migrate                    apply database migrations
//	authpipe-proxy apikey create|list|revoke  manage API keys
//	authpipe-proxy config check               validate the settings, reach the database and the KMS
//	authpipe-proxy probe                      GET the local /readyz (the container HEALTHCHECK)
//	authpipe-proxy --help                     every command; 'authpipe-proxy CMD --help' for one
//
// The commands are a table (commands.go: what a command is and how to add one); each
// lives in a file named for it. Every command that reads the configuration takes that of
// serve (environment, --config FILE, flags); settings that are malformed or unsafe for
// the profile stop it with one line and exit status 2, as do usage errors, before
// anything is opened or created.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/buildinfo"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		fmt.Fprintln(stderr, usage(commands()))
		return 2
	case isHelp(args[0]) || args[0] == "help" && len(args) == 1:
		fmt.Fprintln(stdout, usage(commands()))
		return 0
	case args[0] == "help": // help CMD… = CMD… --help
		args = append(args[1:], "--help")
	case args[0] == "--version" || args[0] == "-version":
		fmt.Fprintln(stdout, buildinfo.Get())
		return 0
	case args[0] == "__complete": // for the completion scripts (help.go)
		for _, c := range complete(commands(), args[1:]) {
			fmt.Fprintln(stdout, c)
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return exitCode(dispatch(ctx, args, stdout, stderr), stdout, stderr)
}

func exitCode(err error, stdout, stderr io.Writer) int {
	var cfgErr *config.ValidationError
	var appCfg *app.ConfigError
	var uerr usageError
	var help helpRequested
	var prob *problem.Problem
	switch {
	case err == nil:
		return 0
	case errors.As(err, &help):
		fmt.Fprintln(stdout, help.text)
		return 0
	case errors.As(err, &cfgErr), errors.As(err, &appCfg), errors.As(err, &uerr):
		fmt.Fprintln(stderr, "authpipe-proxy: "+oneLine(err.Error()))
		return 2
	case errors.As(err, &prob): // refused by the same rule as the API
		fmt.Fprintln(stderr, "authpipe-proxy: "+oneLine(problemText(prob)))
		return 1
	default:
		fmt.Fprintln(stderr, "authpipe-proxy: "+oneLine(err.Error()))
		return 1
	}
}

// problemText is an API problem as one line: its code, detail and field errors.
func problemText(err error) string {
	var p *problem.Problem
	if !errors.As(err, &p) {
		return err.Error()
	}
	msg := p.Error()
	for _, f := range p.Errors {
		msg += "; " + f.Field + ": " + f.Detail
	}
	return msg
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

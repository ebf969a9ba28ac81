// Command authpipe-proxy is the Authpipe data plane: it holds third-party credentials
// for an application's end users, keeps them fresh and hands them out on request.
//
//	authpipe-proxy serve                      start the server
//	authpipe-proxy migrate                    apply database migrations
//	authpipe-proxy apikey create|list|revoke  manage API keys
//	authpipe-proxy workspace create NAME      create a workspace and its first admin key
//	authpipe-proxy audit verify               verify every workspace's audit chain
//	authpipe-proxy purge [--dry-run]          hard-delete what is past retention
//	authpipe-proxy end-user erase|export ID   GDPR erasure or export of one end user
//	authpipe-proxy kek rotate|status          re-wrap every DEK under the current KEKs
//	authpipe-proxy bind-origins               bind credentials stored before origin binding
//	authpipe-proxy version                    the build version and the deployment id
//
// Every command reads the configuration of serve (environment, --config FILE). Settings
// that are malformed or unsafe for the profile stop it with one line and exit status 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, rest, stderr)
	case "migrate":
		err = migrate(ctx, rest, stdout)
	case "apikey":
		err = apikey(ctx, rest, stdout)
	case "workspace":
		err = workspace(ctx, rest, stdout)
	case "kek":
		err = kekCmd(ctx, rest, stdout, stderr)
	case "audit":
		err = auditCmd(ctx, rest, stdout)
	case "keys":
		err = keysCmd(ctx, rest, stdout)
	case "purge":
		err = purge(ctx, rest, stdout)
	case "bind-origins":
		err = bindOrigins(ctx, rest, stdout)
	case "end-user":
		err = endUser(ctx, rest, stdout)
	case "version":
		err = versionCmd(ctx, rest, stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "authpipe-proxy: unknown command %q\n%s\n", cmd, usage)
		return 2
	}
	return exitCode(err, stderr)
}

const usage = `usage: authpipe-proxy <command> [flags]

commands:
  serve                                 start the server
  migrate                               apply database migrations
  apikey create --name N --scopes a,b   create an API key (printed once)
  apikey list                           list API keys
  apikey revoke ID                      revoke an API key
  workspace create NAME                 create a workspace and its first admin key
  workspace set-audit-retention WS D    a workspace's own audit retention (e.g. 720h, or default)
  audit verify [--checkpoint FILE]      verify every workspace's audit chain (against signed checkpoints)
  audit checkpoint                      sign every chain head; append to AUTHPIPE_AUDIT_CHECKPOINT_FILE and print
  purge [--dry-run]                     hard-delete what is past AUTHPIPE_RETENTION / AUTHPIPE_AUDIT_RETENTION
  end-user erase [--workspace WS] ID    GDPR erasure: revoke and hard-delete every connection of the end user
  end-user export [--workspace WS] ID   everything held about the end user (metadata, JSON); -- before an id starting with -
  kek rotate [--purpose P]              re-wrap every DEK under the current KEKs (resumable)
  kek status                            current KEKs, DEKs by KEK, rotation progress
  keys rotate --purpose P               rotate a proxy key: apikey-hash|state|webhook|checkpoint
  bind-origins                          bind credentials stored before origin binding (the server does it at start-up)
  version                               print the version and the deployment id (read from the database)

Every command takes --config FILE and the settings of 'authpipe-proxy serve --help'.`

// usageError: bad arguments (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error, stderr io.Writer) int {
	var cfgErr *config.ValidationError
	var appCfg *app.ConfigError
	var uerr usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintln(stderr, config.Usage())
		return 0
	case errors.As(err, &cfgErr), errors.As(err, &appCfg), errors.As(err, &uerr):
		fmt.Fprintln(stderr, "authpipe-proxy: "+oneLine(err.Error()))
		return 2
	default:
		fmt.Fprintln(stderr, "authpipe-proxy: "+oneLine(err.Error()))
		return 1
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// open loads the configuration from the environment and args, and builds the app.
func open(ctx context.Context, args []string, logOut io.Writer) (*app.App, error) {
	cfg, err := config.Load(args, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	return app.New(ctx, cfg, app.WithLogOutput(logOut))
}

// openReady opens the app and brings its database up to date: the current schema, the
// default workspace and the bootstrap key. The caller closes it.
func openReady(ctx context.Context, cfgArgs []string) (*app.App, error) {
	a, err := open(ctx, cfgArgs, io.Discard)
	if err != nil {
		return nil, err
	}
	if err := a.Bootstrap(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	a, err := open(ctx, args, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Serve(ctx, nil)
}

// versionCmd prints the build version, then this deployment's id, which it reads from
// the configured database (AUTHPIPE_DATABASE_URL): "unknown" with the reason when the
// database cannot say (not reachable, or neither serve nor migrate has run yet). Only the
// version needs no database; the command fails only on bad arguments or settings.
func versionCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fmt.Fprintln(stdout, "authpipe-proxy", version)
	cfg, err := config.Load(args, os.LookupEnv)
	if err != nil {
		return err
	}
	id, err := app.DeploymentID(ctx, cfg)
	switch {
	case errors.Is(err, app.ErrNoDeploymentID):
		fmt.Fprintln(stdout, "deployment: unknown (created by the first serve or migrate)")
	case err != nil: // not quoted: a database error may name the URL
		fmt.Fprintln(stdout, "deployment: unknown (the database at "+config.EnvDatabaseURL+" cannot be read)")
	default:
		fmt.Fprintln(stdout, "deployment:", id)
	}
	return nil
}

func migrate(ctx context.Context, args []string, stdout io.Writer) error {
	a, err := open(ctx, args, io.Discard)
	if err != nil {
		return err
	}
	defer a.Close()
	applied, err := a.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied %d migration(s)\n", len(applied))
	return nil
}

// sub parses a sub-command's own flags; --config and the settings' flags pass through
// to the configuration.
func sub(name string, args []string, define func(*flag.FlagSet)) ([]string, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	var own, cfgArgs []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		flagName := strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-")
		if strings.HasPrefix(a, "-") && fs.Lookup(flagName) == nil {
			cfgArgs = append(cfgArgs, a)
			if !strings.Contains(a, "=") && i+1 < len(args) {
				cfgArgs = append(cfgArgs, args[i+1])
				i++
			}
			continue
		}
		own = append(own, a)
	}
	if err := fs.Parse(own); err != nil {
		return nil, nil, usageError{msg: name + ": " + err.Error()}
	}
	return fs.Args(), cfgArgs, nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/authpipe/authpipe-proxy/internal/config"
)

// A command is one leaf of the command tree ("serve", "apikey create"). Everything the
// command line can get wrong is checked before run is called, so a usage error (or
// --help) never creates a file, opens the database or the KMS, or runs a migration:
// the dispatcher parses the command's own flags, calls args on the positional
// arguments, loads and validates the configuration (pure: config.Load), and only then
// calls run.
//
// Adding a command is two steps:
//
//  1. In a file named for it, write a constructor that returns a *command. Bind its
//     flags to variables of the constructor in flags, check the positional arguments and
//     flag values in args (return usageError), and do the work in run, opening what it
//     needs through the call (c.openReady, c.open, c.openReadOnly).
//  2. Add the constructor to commands() below.
//
// The usage text, per-command --help and shell completion are derived from the table.
type command struct {
	path    string // the words after "authpipe-proxy": "apikey create"
	usage   string // what follows them in the synopsis: "--scopes S [--name N] ID"
	summary string // one line in the command list
	doc     string // optional paragraph for --help
	// flags declares the command's own flags (nil: none). Every other flag is a setting
	// (--config FILE and the flags of `serve --help`), unless noSettings.
	flags func(fs *flag.FlagSet)
	// args checks the positional arguments and the values of the own flags (nil: the
	// command takes no positional argument).
	args func(args []string) error
	// noSettings: the command reads no configuration (completion, probe).
	noSettings bool
	// help, when set, replaces the generated --help text (serve lists every setting).
	help func() string
	run  func(ctx context.Context, c *call) error
}

// call is what run gets: the parsed arguments and the loaded configuration.
type call struct {
	args           []string
	cfg            config.Config
	stdout, stderr io.Writer
}

// commands is the command tree, in the order of the usage text.
func commands() []*command {
	return []*command{
		serveCommand(), migrateCommand(),
		apikeyCreateCommand(), apikeyListCommand(), apikeyRevokeCommand(),
		workspaceCreateCommand(), workspaceRetentionCommand(), workspaceFreezeCommand(true), workspaceFreezeCommand(false),
		incidentRotateCommand(),
		auditVerifyCommand(), auditCheckpointCommand(),
		purgeCommand(),
		endUserCommand("erase"), endUserCommand("export"),
		kekRotateCommand(), kekStatusCommand(),
		keysRotateCommand(),
		bindOriginsCommand(),
		importCommand(),
		configCheckCommand(),
		probeCommand(),
		versionCommand(),
		completionCommand(),
	}
}

// usageError: bad arguments (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// helpRequested: --help was given; the dispatcher prints the text, exit 0.
type helpRequested struct{ text string }

func (helpRequested) Error() string { return "help requested" }

// find returns the command named by the first words of args and the rest of args. When
// none matches, it returns the usage error to print (naming the group's sub-commands
// when the first word is a group such as "apikey").
func find(cmds []*command, args []string) (*command, []string, error) {
	var best *command
	for _, c := range cmds {
		words := strings.Fields(c.path)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) && (best == nil || len(words) > len(strings.Fields(best.path))) {
			best = c
		}
	}
	if best != nil {
		return best, args[len(strings.Fields(best.path)):], nil
	}
	var subs []string
	for _, c := range cmds {
		if g, s, ok := strings.Cut(c.path, " "); ok && g == args[0] {
			subs = append(subs, s)
		}
	}
	if len(subs) == 0 {
		return nil, nil, usageError{msg: fmt.Sprintf("unknown command %q; run 'authpipe-proxy --help'", args[0])}
	}
	if len(args) > 1 && (isHelp(args[1]) || args[1] == "help") || len(args) == 1 {
		text := groupHelp(cmds, args[0])
		if len(args) == 1 {
			return nil, nil, usageError{msg: args[0] + ": want " + joinOr(subs) + "; run 'authpipe-proxy " + args[0] + " --help'"}
		}
		return nil, nil, helpRequested{text: text}
	}
	return nil, nil, usageError{msg: fmt.Sprintf("%s: unknown command %q; want %s", args[0], args[1], joinOr(subs))}
}

// joinOr: "a, b or c".
func joinOr(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// parse splits args into the command's own flags (parsed into fs), setting flags (for
// config.Load) and positional arguments, which may come in any order; "--" ends the
// flags. -h/--help anywhere before "--" asks for the command's help.
func (c *command) parse(args []string) (pos, cfgArgs []string, err error) {
	fs := c.flagSet()
	settings := settingFlags()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		if isHelp(a) {
			return nil, nil, helpRequested{text: c.helpText()}
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if f := fs.Lookup(name); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() && !hasValue {
				value, hasValue = "true", true
			}
			if !hasValue {
				if i+1 == len(args) {
					return nil, nil, usageError{msg: c.path + ": flag --" + name + " needs a value"}
				}
				i++
				value = args[i]
			}
			if err := fs.Set(name, value); err != nil {
				// Not echoed: the flag package quotes the value.
				return nil, nil, usageError{msg: c.path + ": invalid value for --" + name}
			}
			continue
		}
		isBool, known := settings[name]
		if !known || c.noSettings {
			return nil, nil, usageError{msg: c.path + ": unknown flag --" + name + "; run 'authpipe-proxy " + c.path + " --help'"}
		}
		cfgArgs = append(cfgArgs, a)
		if !hasValue && !isBool && i+1 < len(args) {
			cfgArgs = append(cfgArgs, args[i+1])
			i++
		}
	}
	if c.args != nil {
		err = c.args(pos)
	} else if len(pos) > 0 {
		err = usageError{msg: c.path + ": takes no arguments"}
	}
	return pos, cfgArgs, err
}

// flagSet is the command's own flags.
func (c *command) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet(c.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.flags != nil {
		c.flags(fs)
	}
	return fs
}

// settingFlags maps the settings' flag names (and "config") to whether they are booleans.
func settingFlags() map[string]bool {
	m := map[string]bool{config.ConfigFlag: false}
	for _, s := range config.Settings() {
		m[s.Flag] = s.Bool
	}
	return m
}

// dispatch runs the command args name.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd, rest, err := find(commands(), args)
	if err != nil {
		return err
	}
	pos, cfgArgs, err := cmd.parse(rest)
	if err != nil {
		return err
	}
	c := &call{args: pos, stdout: stdout, stderr: stderr}
	if !cmd.noSettings {
		if c.cfg, err = config.Load(cfgArgs, os.LookupEnv); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return helpRequested{text: cmd.helpText()}
			}
			return err
		}
		if cmd.path != "serve" && cmd.path != "config check" { // those two report them themselves
			for _, w := range config.UnknownVariables(os.Environ()) {
				fmt.Fprintln(stderr, "authpipe-proxy: warning: "+w)
			}
		}
	}
	return cmd.run(ctx, c)
}

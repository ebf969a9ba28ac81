package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/authpipe/authpipe-proxy/internal/config"
)

// usage is the command list of `authpipe-proxy --help`.
func usage(cmds []*command) string {
	var b strings.Builder
	b.WriteString("usage: authpipe-proxy <command> [flags]\n\ncommands:\n")
	for _, c := range cmds {
		if c.summary == "" {
			continue
		}
		fmt.Fprintf(&b, "  %-40s %s\n", synopsis(c), c.summary)
	}
	b.WriteString("\nRun 'authpipe-proxy <command> --help' for a command's flags. Commands that read the\n" +
		"configuration take --config FILE and the settings' flags of 'authpipe-proxy serve --help'\n" +
		"(or their AUTHPIPE_* environment variables).\n" +
		"'authpipe-proxy --version' prints the build.")
	return b.String()
}

func synopsis(c *command) string {
	if c.usage == "" {
		return c.path
	}
	return c.path + " " + c.usage
}

// groupHelp lists a group's sub-commands ("apikey --help").
func groupHelp(cmds []*command, group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: authpipe-proxy %s <command> [flags]\n\ncommands:\n", group)
	for _, c := range cmds {
		if strings.HasPrefix(c.path, group+" ") {
			fmt.Fprintf(&b, "  %-40s %s\n", synopsis(c), c.summary)
		}
	}
	fmt.Fprintf(&b, "\nRun 'authpipe-proxy %s <command> --help' for a command's flags.", group)
	return b.String()
}

// helpText is a command's --help: synopsis, description, its own flags, and where the
// settings are described.
func (c *command) helpText() string {
	if c.help != nil {
		return c.help()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "usage: authpipe-proxy %s\n\n%s\n", synopsis(c), c.summary)
	if c.doc != "" {
		fmt.Fprintf(&b, "\n%s\n", c.doc)
	}
	fs := c.flagSet()
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		b.WriteString("\nflags:\n")
		fs.VisitAll(func(f *flag.Flag) {
			arg, usage := flag.UnquoteUsage(f)
			switch arg {
			case "":
			case "string":
				arg = " VALUE"
			case "int":
				arg = " N"
			default:
				arg = " " + strings.ToUpper(arg)
			}
			def := ""
			if f.DefValue != "" && f.DefValue != "false" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(&b, "  --%s%s\n\t%s%s\n", f.Name, arg, usage, def)
		})
	}
	if !c.noSettings {
		b.WriteString("\nThe configuration comes from the AUTHPIPE_* environment, --config FILE and the\n" +
			"settings' flags: see 'authpipe-proxy serve --help' or docs/configuration.md.\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

func serveHelp() string { return strings.TrimRight(config.Usage(), "\n") }

// completionCommand prints a shell completion script. The scripts call the hidden
// `authpipe-proxy __complete WORDS…`, which answers from the command table, so they
// never go stale.
func completionCommand() *command {
	return &command{
		path: "completion", usage: "bash|zsh|fish", summary: "print a shell completion script",
		doc: "bash:  source <(authpipe-proxy completion bash)\n" +
			"zsh:   source <(authpipe-proxy completion zsh)   (after compinit)\n" +
			"fish:  authpipe-proxy completion fish | source",
		noSettings: true,
		args: func(args []string) error {
			if len(args) != 1 || completionScripts[args[0]] == "" {
				return usageError{msg: "completion: want bash, zsh or fish"}
			}
			return nil
		},
		run: func(_ context.Context, c *call) error {
			_, err := fmt.Fprint(c.stdout, completionScripts[c.args[0]])
			return err
		},
	}
}

var completionScripts = map[string]string{
	"bash": `# bash completion for authpipe-proxy
_authpipe_proxy() {
	local IFS=$'\n'
	COMPREPLY=($(authpipe-proxy __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _authpipe_proxy authpipe-proxy
`,
	"zsh": `#compdef authpipe-proxy
_authpipe_proxy() {
	local -a candidates
	candidates=("${(@f)$(authpipe-proxy __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	compadd -a candidates
}
compdef _authpipe_proxy authpipe-proxy
`,
	"fish": `# fish completion for authpipe-proxy
complete -c authpipe-proxy -f -a '(authpipe-proxy __complete (commandline -opc)[2..-1] (commandline -ct))'
`,
}

// complete answers `__complete WORDS…`: the candidates for the last word (possibly
// empty) after the others, one per line.
func complete(cmds []*command, words []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	done, cur := words[:len(words)-1], words[len(words)-1]
	var out []string
	add := func(s string) {
		if strings.HasPrefix(s, cur) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	switch {
	case len(done) == 0:
		for _, c := range cmds {
			if c.summary != "" {
				add(strings.Fields(c.path)[0])
			}
		}
		add("--help")
		add("--version")
	default:
		cmd, _, err := find(cmds, done)
		if err != nil && len(done) == 1 { // a group: its sub-commands
			for _, c := range cmds {
				if g, s, ok := strings.Cut(c.path, " "); ok && g == done[0] {
					add(s)
				}
			}
		}
		if cmd == nil || !strings.HasPrefix(cur, "-") {
			break
		}
		cmd.flagSet().VisitAll(func(f *flag.Flag) { add("--" + f.Name) })
		add("--help")
		if !cmd.noSettings {
			names := []string{"--" + config.ConfigFlag}
			for _, s := range config.Settings() {
				names = append(names, "--"+s.Flag)
			}
			sort.Strings(names)
			for _, n := range names {
				add(n)
			}
		}
	}
	return out
}

package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ConfigFlag is the flag that names the optional YAML file.
const ConfigFlag = "config"

// Load builds the configuration of `serve` from args (the sub-command's arguments,
// after "serve"), the environment (lookupEnv, normally os.LookupEnv) and the YAML file
// named by --config, then validates it. Flags win over the environment, the
// environment over the file, the file over the defaults. An empty value counts as not
// given, except for settings whose Setting.EmptyIsValue is true.
//
// Every problem is returned at once as a *ValidationError (the Config returned with it
// holds what could be parsed; never run with it). With -h or --help the error wraps
// flag.ErrHelp and the caller should print Usage.
func Load(args []string, lookupEnv func(string) (string, bool)) (Config, error) {
	settings := Settings()

	fromFlags, configPath, err := parseFlags(settings, args)
	if err != nil {
		return Config{}, err
	}

	var fileIssues []Issue
	fromFile := map[string]string{}
	if configPath != "" {
		fromFile, fileIssues, err = readFile(settings, configPath)
		if err != nil {
			return Config{}, err
		}
	}

	lookupEnv, fileVarIssues := withFileVariants(settings, lookupEnv)
	var cfg Config
	parseIssues := append(append([]Issue(nil), fileIssues...), fileVarIssues...)
	for _, s := range settings {
		raw, given := resolve(s, fromFlags, lookupEnv, fromFile)
		if s.Name == EnvOutboundAllowCIDRs {
			cfg.OutboundAllowCIDRsSet = given
		}
		if !given {
			if s.Default == "" || (s.DevOnlyDefault && cfg.Profile != ProfileDev) {
				continue
			}
			raw = s.Default
		}
		if msg := s.parse(&cfg, raw); msg != "" {
			parseIssues = append(parseIssues, Issue{Var: s.Name, Msg: msg})
		}
	}

	// Rules on values that failed to parse would only repeat the problem.
	failed := map[string]bool{}
	for _, is := range parseIssues {
		failed[is.Var] = true
	}
	issues := parseIssues
	for _, is := range cfg.check() {
		if !failed[is.Var] {
			issues = append(issues, is)
		}
	}
	if len(issues) > 0 {
		return cfg, newValidationError(issues)
	}
	return cfg, nil
}

// resolve returns a setting's raw value by precedence flag > env > file.
func resolve(s Setting, fromFlags map[string]string, lookupEnv func(string) (string, bool), fromFile map[string]string) (string, bool) {
	use := func(v string, ok bool) (string, bool) {
		v = strings.TrimSpace(v)
		return v, ok && (v != "" || s.EmptyIsValue)
	}
	if v, ok := use(lookupMap(fromFlags, s.Name)); ok {
		return v, true
	}
	if lookupEnv != nil {
		if v, ok := use(lookupEnv(s.Name)); ok {
			return v, true
		}
	}
	return use(lookupMap(fromFile, s.Name))
}

func lookupMap(m map[string]string, k string) (string, bool) {
	v, ok := m[k]
	return v, ok
}

func newFlagSet(settings []Setting, fromFlags map[string]string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String(ConfigFlag, "", "YAML file whose keys are the variable names (AUTHPIPE_LISTEN_ADDR or listen_addr)")
	for _, s := range settings {
		record := func(v string) error {
			if fromFlags != nil {
				fromFlags[s.Name] = v
			}
			return nil
		}
		if s.Bool {
			fs.BoolFunc(s.Flag, s.Description, record)
		} else {
			fs.Func(s.Flag, s.Description, record)
		}
	}
	return fs, configPath
}

func parseFlags(settings []Setting, args []string) (map[string]string, string, error) {
	fromFlags := map[string]string{}
	fs, configPath := newFlagSet(settings, fromFlags)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, "", fmt.Errorf("config: %w", err)
		}
		// The flag package names the flag, never its value, in these errors.
		return nil, "", newValidationError([]Issue{{Var: "command line", Msg: err.Error()}})
	}
	if fs.NArg() > 0 {
		// Not echoed: a misplaced argument may be a secret.
		return nil, "", newValidationError([]Issue{{Var: "command line",
			Msg: fmt.Sprintf("%d unexpected argument(s) after the flags (a true/false flag takes --name=false, not --name false)", fs.NArg())}})
	}
	return fromFlags, *configPath, nil
}

// readFile reads the YAML file: a mapping whose keys are variable names, long
// (AUTHPIPE_LISTEN_ADDR) or short (listen_addr). Unknown keys are issues; an unreadable
// or malformed file is an error.
func readFile(settings []Setting, path string) (map[string]string, []Issue, error) {
	fail := func(msg string) error {
		return newValidationError([]Issue{{Var: "--" + ConfigFlag, Msg: msg}})
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fail(err.Error())
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fail(fmt.Sprintf("%s: %v", path, err))
	}
	out := map[string]string{}
	if doc.Kind == 0 { // empty file
		return out, nil, nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, fail(fmt.Sprintf("%s: want a mapping of setting names to values", path))
	}
	byKey := map[string]Setting{}
	for _, s := range settings {
		byKey[s.Name] = s
		byKey[s.Key] = s
	}
	var issues []Issue
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		s, ok := byKey[k.Value]
		if !ok {
			issues = append(issues, Issue{Var: "--" + ConfigFlag, Msg: fmt.Sprintf("%s line %d: unknown key %q", path, k.Line, k.Value)})
			continue
		}
		if _, dup := out[s.Name]; dup {
			issues = append(issues, Issue{Var: s.Name, Msg: fmt.Sprintf("given twice in %s (line %d)", path, k.Line)})
			continue
		}
		raw, msg := nodeValue(s, v)
		if msg != "" {
			issues = append(issues, Issue{Var: s.Name, Msg: fmt.Sprintf("%s line %d: %s", path, v.Line, msg)})
			continue
		}
		out[s.Name] = raw
	}
	return out, issues, nil
}

// nodeValue turns a YAML value into the raw string the environment would carry: a
// scalar as written, a null as empty, a sequence (for list settings) joined by commas.
func nodeValue(s Setting, v *yaml.Node) (string, string) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return "", ""
		}
		return v.Value, ""
	case yaml.SequenceNode:
		if !s.List {
			return "", "a list is only allowed for list settings"
		}
		items := make([]string, 0, len(v.Content))
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode {
				return "", "list items must be strings"
			}
			items = append(items, it.Value)
		}
		return strings.Join(items, ","), ""
	default:
		return "", "want a string, number, boolean or list"
	}
}

// Usage describes the flags of `serve`, one per setting, for -h.
func Usage() string {
	var b strings.Builder
	b.WriteString("Usage: authpipe-proxy serve [flags]\n\nEvery flag overrides the environment variable of the same name, which overrides the --config file.\n\n")
	fmt.Fprintf(&b, "  --%s FILE\n\tYAML file whose keys are the variable names (AUTHPIPE_LISTEN_ADDR or listen_addr)\n", ConfigFlag)
	for _, s := range Settings() {
		arg := " VALUE"
		if s.Bool {
			arg = "[=true|false]"
		}
		def := ""
		if s.Default != "" && !s.Secret {
			def = fmt.Sprintf(" (default %q", s.Default)
			if s.DevOnlyDefault {
				def += " in dev"
			}
			def += ")"
		}
		fmt.Fprintf(&b, "  --%s%s\n\t%s%s [%s]\n", s.Flag, arg, s.Description, def, s.Name)
	}
	return b.String()
}

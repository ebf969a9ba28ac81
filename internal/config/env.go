package config

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// FileSuffix names a setting's file variant: AUTHPIPE_DATABASE_URL_FILE=/run/secrets/db
// reads AUTHPIPE_DATABASE_URL from that file (surrounding blanks and the final newline
// trimmed). Settings with Setting.FromFile have one.
const FileSuffix = "_FILE"

// maxSecretFile bounds what a *_FILE variable may name.
const maxSecretFile = 64 << 10

// withFileVariants returns lookupEnv with the file variants read in: NAME answers with the
// content of the file NAME_FILE names. Both set, or an unreadable file, is an issue. The
// file's content is never quoted.
func withFileVariants(settings []Setting, lookupEnv func(string) (string, bool)) (func(string) (string, bool), []Issue) {
	if lookupEnv == nil {
		return nil, nil
	}
	read := map[string]string{}
	var issues []Issue
	for _, s := range settings {
		if !s.FromFile {
			continue
		}
		path, ok := lookupEnv(s.Name + FileSuffix)
		if path = strings.TrimSpace(path); !ok || path == "" {
			continue
		}
		if v, ok := lookupEnv(s.Name); ok && strings.TrimSpace(v) != "" {
			issues = append(issues, Issue{Var: s.Name, Msg: "set together with " + s.Name + FileSuffix + "; set one of them"})
			continue
		}
		v, err := readSecretFile(path)
		if err != nil {
			issues = append(issues, Issue{Var: s.Name + FileSuffix, Msg: err.Error()})
			continue
		}
		read[s.Name] = v
	}
	return func(name string) (string, bool) {
		if v, ok := read[name]; ok {
			return v, true
		}
		return lookupEnv(name)
	}, issues
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, unwrapPathError(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, unwrapPathError(err))
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%s is larger than %d KiB", path, maxSecretFile>>10)
	}
	return strings.TrimSpace(string(b)), nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// Prefixes of AUTHPIPE_ variables that are not settings and not typos: the test
// harness's (scripts/test.sh).
var ignoredPrefixes = []string{"AUTHPIPE_TEST_", "AUTHPIPE_REQUIRE_"}

// UnknownVariables returns one warning for each AUTHPIPE_* variable in environ (the
// os.Environ form, NAME=value) that names no setting nor a setting's file variant — a
// typo is otherwise silently ignored — with the nearest setting's name when one is close.
// Values are never quoted.
func UnknownVariables(environ []string) []string {
	known := map[string]bool{}
	var names []string
	for _, s := range Settings() {
		known[s.Name] = true
		names = append(names, s.Name)
		if s.FromFile {
			known[s.Name+FileSuffix] = true
		}
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "AUTHPIPE_") || known[name] || ignored(name) {
			continue
		}
		msg := "unknown variable " + name + " is ignored"
		if near := nearest(name, names); near != "" {
			msg += " (did you mean " + near + "?)"
		}
		out = append(out, msg)
	}
	sort.Strings(out)
	return out
}

func ignored(name string) bool {
	for _, p := range ignoredPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// nearest is the name closest to s by edit distance, if within a third of its length.
func nearest(s string, names []string) string {
	best, bestD := "", len(s)/3+1
	for _, n := range names {
		if d := distance(strings.TrimSuffix(s, FileSuffix), n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

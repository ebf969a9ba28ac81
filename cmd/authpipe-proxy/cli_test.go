package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// cli runs the binary in dir with env (nothing else of AUTHPIPE_*) and returns stdout,
// stderr and the exit status.
func cli(t *testing.T, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return stdout.String(), stderr.String(), code
}

// requireEmptyDir: the command created nothing (no database, no key file, no directory).
func requireEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Empty(t, names, "the command created files")
}

// Every command has its own --help (not serve's settings), printed with exit 0 and no
// side effect.
func TestEveryCommandHasItsOwnHelp(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.path, func(t *testing.T) {
			dir := t.TempDir()
			args := append(strings.Fields(c.path), "--help")
			stdout, stderr, code := cli(t, dir, nil, args...)
			require.Equal(t, 0, code, stderr)
			if c.path == "serve" {
				require.Contains(t, stdout, "--listen-addr", "serve lists every setting")
			} else {
				require.Contains(t, stdout, "usage: authpipe-proxy "+c.path)
				require.NotContains(t, stdout, "--listen-addr", "not serve's flags")
			}
			requireEmptyDir(t, dir)
		})
	}
	stdout, _, code := cli(t, t.TempDir(), nil, "--help")
	require.Equal(t, 0, code)
	for _, c := range commands() {
		require.Contains(t, stdout, c.path)
	}
}

// Usage errors and --help create no file, open no database and run no migration: the
// arguments are checked before anything is opened.
func TestUsageErrorsHaveNoSideEffects(t *testing.T) {
	cases := [][]string{
		{"apikey", "--help"}, {"apikey"}, {"apikey", "bogus"}, {"apikey", "revoke"}, {"apikey", "revoke", "a", "b"},
		{"apikey", "create"}, {"apikey", "create", "--scopes", "token:read"}, {"apikey", "create", "--scopes", ""},
		{"apikey", "create", "--scopes", "workspaces:write"}, {"apikey", "create", "--scopes", "admin", "--name", "bad/name"},
		{"apikey", "list", "--output", "yaml"}, {"apikey", "list", "--nope"},
		{"kek", "status"}, {"kek", "status", "--purpose", "tokens"}, {"kek", "rotate", "--workers", "0"}, {"kek"},
		{"workspace", "create"}, {"workspace", "set-audit-retention", "ws", "soon"}, {"workspace", "freeze"}, {"workspace", "unfreeze", "a", "b"},
		{"incident", "rotate"}, {"incident", "rotate", "--api-key", "apk_x", "--all"}, {"incident", "rotate", "--all", "--since", "1s"}, {"incident", "rotate", "--all", "x"},
		{"end-user", "erase"}, {"keys", "rotate"}, {"purge", "extra"}, {"bind-origins", "x"}, {"migrate", "--help"},
		{"audit", "verify", "--output", "xml"}, {"config", "check"}, {"config", "check", "--timeout", "0s"},
		{"completion", "tcsh"}, {"probe", "--path", "/metrics"}, {"nope"}, {"version", "--help"}, {"serve", "--help"},
		{"apikey", "create", "--scopes", "admin", "--listen-addr"},
		{"import"}, {"import", "no-such-file.jsonl"}, {"import", "a", "b"}, {"import", "--help"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dir := t.TempDir()
			_, stderr, code := cli(t, dir, []string{"AUTHPIPE_KEK_URI=local://./fresh/kek.key"}, args...)
			require.Contains(t, []int{0, 2}, code, stderr)
			if code == 2 {
				require.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %s", stderr)
			}
			requireEmptyDir(t, dir)
		})
	}
}

// apikey create: scopes are required and checked by the API's rule (admin.ValidScopes).
func TestAPIKeyCreateScopes(t *testing.T) {
	dir := t.TempDir()
	_, stderr, code := cli(t, dir, nil, "apikey", "create", "--name", "x")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--scopes is required")
	_, stderr, code = cli(t, dir, nil, "apikey", "create", "--scopes", "tokens:read,token:read")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `unknown scope "token:read"`)
	stdout, stderr, code := cli(t, dir, nil, "apikey", "create", "--scopes", "tokens:read, audit:read", "--name", "reader")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "scopes: audit:read,tokens:read")

	stdout, _, code = cli(t, dir, nil, "apikey", "list", "--output", "json")
	require.Equal(t, 0, code)
	require.Regexp(t, `^\{"id":"apk_[^"]+","name":"reader","prefix":"[^"]+","scopes":\["audit:read","tokens:read"\]`, stdout)
}

func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		stdout, _, code := cli(t, t.TempDir(), nil, "completion", sh)
		require.Equal(t, 0, code)
		require.Contains(t, stdout, "authpipe-proxy __complete")
	}
	cmds := commands()
	require.Contains(t, complete(cmds, []string{""}), "apikey")
	require.Equal(t, []string{"create"}, complete(cmds, []string{"apikey", "cr"}))
	require.Equal(t, []string{"--output"}, complete(cmds, []string{"apikey", "list", "--outp"}))
	require.Contains(t, complete(cmds, []string{"serve", "--database-"}), "--database-url")
	require.Empty(t, complete(cmds, []string{"probe", "--database-"}), "probe reads no settings")

	if _, err := exec.LookPath("bash"); err == nil {
		// The bash script, driven as bash would: the candidates for "authpipe-proxy kek r".
		script, _, _ := cli(t, t.TempDir(), nil, "completion", "bash")
		sh := script + "\nCOMP_WORDS=(authpipe-proxy kek r); COMP_CWORD=2; _authpipe_proxy; echo \"${COMPREPLY[@]}\"\n"
		cmd := exec.Command("bash", "-c", sh)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(binary)+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Equal(t, "rotate\n", string(out))
	}
}

// Version, revision and date come from the linker (the Makefile's and the Dockerfile's
// build arguments) through internal/buildinfo.
func TestVersionFromLdflags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "authpipe-proxy")
	const pkg = "github.com/authpipe/authpipe-proxy/internal/buildinfo"
	build := exec.Command("go", "build", "-o", out, "-ldflags",
		"-X "+pkg+".version=v9.8.7 -X "+pkg+".revision=0123abc -X "+pkg+".date=2026-12-07T12:00:00Z", ".")
	b, err := build.CombinedOutput()
	require.NoError(t, err, "%s", b)
	got, err := exec.Command(out, "--version").Output()
	require.NoError(t, err)
	require.Regexp(t, `^authpipe-proxy v9\.8\.7 \(revision 0123abc, built 2026-12-07T12:00:00Z, go[0-9.]+\)\n$`, string(got))
	cmd := exec.Command(out, "version")
	cmd.Dir = t.TempDir()
	cmd.Env = cleanEnv()
	got, err = cmd.Output()
	require.NoError(t, err)
	require.Contains(t, string(got), "authpipe-proxy v9.8.7 (revision 0123abc")
	require.Contains(t, string(got), "deployment: unknown")
	entries, _ := os.ReadDir(cmd.Dir)
	require.Empty(t, entries, "version creates no database")
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	// Invalid settings: exit 2, naming the variable.
	_, stderr, code := cli(t, dir, []string{"AUTHPIPE_RETENTION=9999h"}, "config", "check")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "AUTHPIPE_RETENTION")
	// Nothing there yet: no database, and nothing created by asking.
	stdout, _, code := cli(t, dir, nil, "config", "check")
	require.NotEqual(t, 0, code)
	require.Contains(t, stdout, "no database at ./data/authpipe.db")
	requireEmptyDir(t, dir)

	_, stderr, code = cli(t, dir, nil, "migrate")
	require.Equal(t, 0, code, stderr)
	stdout, stderr, code = cli(t, dir, []string{"AUTHPIPE_LOG_LEVL=debug"}, "config", "check")
	require.Equal(t, 0, code, stdout+stderr)
	require.Contains(t, stdout, "database\tok")
	require.Contains(t, stdout, "kms credentials\tok")
	require.Contains(t, stdout, "kms client_secrets\tok")
	require.Contains(t, stdout, "unknown variable AUTHPIPE_LOG_LEVL is ignored (did you mean AUTHPIPE_LOG_LEVEL?)")

	// A KEK that is not there: exit non-zero with the reason, no key file created.
	stdout, stderr, code = cli(t, dir, []string{"AUTHPIPE_KEK_URI=local://./other.key"}, "config", "check")
	require.NotEqual(t, 0, code)
	require.Contains(t, stdout+stderr, "AUTHPIPE_KEK_URI")
	_, err := os.Stat(filepath.Join(dir, "other.key"))
	require.ErrorIs(t, err, os.ErrNotExist)

	// A database that does not answer (PostgreSQL on a closed port).
	stdout, _, code = cli(t, dir, []string{"AUTHPIPE_DATABASE_URL=postgres://u@127.0.0.1:1/x?connect_timeout=2"}, "config", "check", "--timeout", "5s")
	require.Equal(t, 1, code, stdout)
	require.Contains(t, stdout, "database\tFAILED")
	require.NotContains(t, stdout, "database\tok")

	// *_FILE: the database URL from a file; both set is refused naming both.
	urlFile := filepath.Join(t.TempDir(), "db-url")
	require.NoError(t, os.WriteFile(urlFile, []byte("sqlite://./data/authpipe.db\n"), 0o600))
	stdout, stderr, code = cli(t, dir, []string{"AUTHPIPE_DATABASE_URL_FILE=" + urlFile}, "config", "check")
	require.Equal(t, 0, code, stdout+stderr)
	_, stderr, code = cli(t, dir, []string{"AUTHPIPE_DATABASE_URL_FILE=" + urlFile, "AUTHPIPE_DATABASE_URL=sqlite://./x.db"}, "config", "check")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "AUTHPIPE_DATABASE_URL: set together with AUTHPIPE_DATABASE_URL_FILE")
}

// Unknown AUTHPIPE_ variables are warned about at start-up (serve logs it).
func TestServeWarnsAboutUnknownVariables(t *testing.T) {
	addr := freeAddr(t)
	_, logs := startServe(t, t.TempDir(), addr, "AUTHPIPE_REFRESH_LEED=1m", "AUTHPIPE_SHUTDOWN_DELAY=0s")
	waitFor(t, "http://"+addr+"/healthz", 10e9, 200)
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "unknown variable AUTHPIPE_REFRESH_LEED is ignored (did you mean AUTHPIPE_REFRESH_LEAD?)")
	}, 5e9, 50e6)
}

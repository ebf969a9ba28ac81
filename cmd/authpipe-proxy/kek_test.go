package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/vault"
)

// TestCLIKekRotate drives the binary: workspaces on one KEK, a new KEK configured with
// the old one as previous, `kek rotate` moves every credentials DEK, a second run changes
// nothing, and `kek status` works without the old KEK.
func TestCLIKekRotate(t *testing.T) {
	dir := t.TempDir()
	oldKEK := "AUTHPIPE_KEK_URI=local://" + filepath.Join(dir, "data", "kek.key")
	newKEK := "AUTHPIPE_KEK_URI=local://" + filepath.Join(dir, "data", "kek-2.key")
	previous := "AUTHPIPE_KEK_PREVIOUS_URIS=local://" + filepath.Join(dir, "data", "kek.key")
	run := func(wantOK bool, env []string, args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Dir = dir
		cmd.Env = cleanEnv(env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if wantOK {
			require.NoError(t, err, "%v: %s%s", args, stdout.String(), stderr.String())
		} else {
			require.Error(t, err, "%v: %s%s", args, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	for _, name := range []string{"acme", "globex", "initech"} {
		run(true, []string{oldKEK}, "workspace", "create", name)
	}
	before, _ := run(true, []string{oldKEK}, "kek", "status")
	require.Contains(t, before, "credentials\tkek local:")
	require.Contains(t, before, "rotation idle")

	out, progress := run(true, []string{newKEK, previous}, "kek", "rotate")
	require.Regexp(t, `credentials: 3 DEK\(s\) under local:[0-9a-f]+`, out)
	require.Contains(t, out, "client_secrets: 0 DEK(s)", "its KEK did not change")
	// Not a terminal: plain progress lines, ending with the final count.
	require.Regexp(t, `kek rotate: credentials: 3/3 DEKs \(100\.0%\).*, done`, progress)
	require.NotContains(t, progress, "\r", "no bar when stderr is not a terminal")

	status, _ := run(true, []string{newKEK}, "kek", "status", "--purpose", "credentials")
	require.Contains(t, status, "rotation done\t3/3 DEKs")
	require.NotContains(t, status, "client_secrets\t")
	lines := strings.Split(strings.TrimSpace(status), "\n")
	var dekLines []string
	for _, l := range lines {
		if strings.HasPrefix(l, "deks\t") {
			dekLines = append(dekLines, l)
		}
	}
	require.Len(t, dekLines, 2, "one KEK per purpose: the old credentials KEK holds nothing any more: %s", status)

	again, _ := run(true, []string{newKEK, previous}, "kek", "rotate", "--purpose", "credentials")
	require.Contains(t, again, "credentials: 3 DEK(s) under", "idempotent: the finished rotation, unchanged")
	verified, _ := run(true, []string{newKEK}, "audit", "verify")
	require.Contains(t, verified, "ok")

	_, stderr := run(false, nil, "kek")
	require.Contains(t, stderr, "kek: want rotate or status")
	_, stderr = run(false, nil, "kek", "rotate", "--purpose", "tokens")
	require.Contains(t, stderr, "--purpose must be")
}

type stepClock struct{ t time.Time }

func (c *stepClock) now() time.Time { return c.t }

func TestRotationReporterPlainLines(t *testing.T) {
	var buf bytes.Buffer
	clock := &stepClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	r := newRotationReporter(&buf, false, "credentials", clock.now)
	run := vault.Progress{State: vault.RotationRunning, Total: 1000}
	r.report(run) // the start
	for i := 1; i <= 9; i++ {
		clock.t = clock.t.Add(500 * time.Millisecond)
		run.Done = int64(i * 100)
		r.report(run)
	}
	clock.t = clock.t.Add(500 * time.Millisecond)
	run.Done, run.State = 1000, vault.RotationDone
	r.report(run)
	r.finish()

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// One line at the start, then at most one every two seconds, then the last.
	require.Equal(t, []string{
		"kek rotate: credentials: 0/1000 DEKs (0.0%)",
		"kek rotate: credentials: 400/1000 DEKs (40.0%), 200 DEKs/s, ETA 3s",
		"kek rotate: credentials: 800/1000 DEKs (80.0%), 200 DEKs/s, ETA 1s",
		"kek rotate: credentials: 1000/1000 DEKs (100.0%), 200 DEKs/s, done",
	}, lines)
}

func TestRotationReporterInterruptedPrintsWhereItStopped(t *testing.T) {
	var buf bytes.Buffer
	clock := &stepClock{t: time.Now()}
	r := newRotationReporter(&buf, false, "client_secrets", clock.now)
	r.report(vault.Progress{State: vault.RotationRunning, Done: 10, Total: 50, Failed: 1})
	clock.t = clock.t.Add(time.Second)
	r.report(vault.Progress{State: vault.RotationRunning, Done: 20, Total: 50, Failed: 1})
	r.finish()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	require.Equal(t, "kek rotate: client_secrets: 20/50 DEKs (40.0%), 10 DEKs/s, ETA 3s, 1 failed", lines[1])
}

func TestRotationReporterBar(t *testing.T) {
	var buf bytes.Buffer
	r := newRotationReporter(&buf, true, "credentials", time.Now)
	r.report(vault.Progress{State: vault.RotationRunning, Total: 10})
	r.report(vault.Progress{State: vault.RotationRunning, Done: 5, Total: 10})
	r.report(vault.Progress{State: vault.RotationDone, Done: 10, Total: 10})
	r.finish()
	out := buf.String()
	require.Contains(t, out, "credentials")
	require.Contains(t, out, "10/10")
	require.Contains(t, out, "DEKs/s")
	require.Contains(t, out, "\r", "a bar redraws in place")
}

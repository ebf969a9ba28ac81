package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "authpipe-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "authpipe-proxy")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic("build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// cleanEnv is an environment with no AUTHPIPE_ variables: the embedded default.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AUTHPIPE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// syncBuffer is a bytes.Buffer the server's stderr and the test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func startServe(t *testing.T, dir, addr string, env ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--listen-addr", addr)
	cmd.Dir = dir
	// No drain delay unless the test asks for one (a later value wins).
	cmd.Env = cleanEnv(append([]string{"AUTHPIPE_SHUTDOWN_DELAY=0s"}, env...)...)
	var logs syncBuffer
	cmd.Stderr = &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	return cmd, &logs
}

func waitFor(t *testing.T, url string, within time.Duration, wantStatus int) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == wantStatus {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within %s (last err %v)", url, wantStatus, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeInEmptyDirectoryKeepsStateAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	key := "ap_" + strings.Repeat("k", 43)
	cmd, _ := startServe(t, dir, addr, "AUTHPIPE_BOOTSTRAP_API_KEY="+key)
	waitFor(t, "http://"+addr+"/healthz", time.Second, 200)
	waitFor(t, "http://"+addr+"/readyz", 10*time.Second, 200)

	for _, f := range []string{"data/authpipe.db", "data/kek.key", "data/client-secret-kek.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/connections",
		strings.NewReader(`{"provider":"stripe","end_user_id":"u","api_key":"sk_test_restart_0123456789"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 201, res.StatusCode)

	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	_, _ = cmd.Process.Wait()

	// Second start: same directory, no bootstrap key in the environment this time.
	startServe(t, dir, addr)
	waitFor(t, "http://"+addr+"/readyz", 10*time.Second, 200)
	req, _ = http.NewRequest("GET", "http://"+addr+"/v1/connections", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	var body bytes.Buffer
	_, _ = body.ReadFrom(res.Body)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	require.Contains(t, body.String(), `"end_user_id":"u"`, "the key and the connection survived the restart")
}

// serveExit2 runs serve in dir with env, which must stop start-up: exit status 2 and one
// line on stderr, which it returns.
func serveExit2(t *testing.T, dir string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "serve")
	cmd.Dir = dir
	cmd.Env = cleanEnv(env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 2, ee.ExitCode(), "stderr: %s", stderr.String())
	out := strings.TrimRight(stderr.String(), "\n")
	require.NotContains(t, out, "\n", "one line")
	return out
}

func TestBadSettingsExit2WithOneLine(t *testing.T) {
	cases := map[string][]string{
		"retention":        {"AUTHPIPE_RETENTION=800h"},
		"profile":          {"AUTHPIPE_PROFILE=prod"},
		"prod sqlite":      {"AUTHPIPE_PROFILE=production", "AUTHPIPE_PUBLIC_URL=https://p.example.com"},
		"bad database url": {"AUTHPIPE_DATABASE_URL=mysql://x"},
		"same keks":        {"AUTHPIPE_KEK_URI=local://./k", "AUTHPIPE_CLIENT_SECRET_KEK_URI=local://./k"},
		"password hidden":  {"AUTHPIPE_PROFILE=production", "AUTHPIPE_DATABASE_URL=postgres://u:hunter2SENTINEL@db/x"},
	}
	for name, env := range cases {
		t.Run(name, func(t *testing.T) {
			out := serveExit2(t, t.TempDir(), env...)
			require.Contains(t, out, "AUTHPIPE_", "names the variable")
			require.NotContains(t, out, "hunter2SENTINEL")
		})
	}
}

func TestWorldReadableKeyFileExit2(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kek.key"), []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o644))
	cmd := exec.Command(binary, "serve")
	cmd.Dir = dir
	cmd.Env = cleanEnv("AUTHPIPE_KEK_URI=local://./kek.key")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 2, ee.ExitCode())
	require.Contains(t, stderr.String(), "AUTHPIPE_KEK_URI")
}

func TestCLIKeysWorkspacesAudit(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Dir = dir
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
		return string(out)
	}
	require.Contains(t, run("migrate"), "migration")
	out := run("apikey", "create", "--name", "backend", "--scopes", "tokens:read")
	require.Contains(t, out, "key:    ap_")
	require.Contains(t, run("apikey", "list"), "backend")
	id := strings.Fields(strings.SplitN(out, "\n", 2)[0])[1]
	require.Contains(t, run("apikey", "revoke", id), "revoked")
	require.NotContains(t, run("apikey", "list"), "backend")
	require.Contains(t, run("workspace", "create", "acme"), "admin key:    ap_")
	require.Contains(t, run("audit", "verify"), "ok")
	require.Contains(t, run("bind-origins"), "bound 0 client secret(s) and 0 credential(s)")
	require.Contains(t, run("bind-origins"), "bound 0", "a rerun is harmless")
	require.Contains(t, run("version"), "authpipe-proxy")
}

// imageEnv is the AUTHPIPE_ environment the container image (../../Dockerfile) sets, its
// listen port replaced by a free one.
func imageEnv(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	require.NoError(t, err)
	var env []string
	for line := range strings.Lines(string(raw)) {
		kv, ok := strings.CutPrefix(strings.TrimSpace(line), "ENV AUTHPIPE_")
		if !ok || slices.Contains(env, "AUTHPIPE_"+kv) {
			continue
		}
		if v, ok := strings.CutPrefix(kv, "LISTEN_ADDR="); ok {
			host, _, err := net.SplitHostPort(v)
			require.NoError(t, err)
			_, port, _ := net.SplitHostPort(freeAddr(t))
			kv = "LISTEN_ADDR=" + net.JoinHostPort(host, port)
		}
		env = append(env, "AUTHPIPE_"+kv)
	}
	require.NotEmpty(t, env, "the Dockerfile sets AUTHPIPE_LISTEN_ADDR")
	return env
}

// The container image listens on every interface; it must not silently run the dev
// profile (SQLite, a generated local KEK, loopback outbound allowed) there: without
// AUTHPIPE_PROFILE=production or an explicit opt-in, serve exits 2 naming both.
func TestImageRefusesDevOnTheNetwork(t *testing.T) {
	env := imageEnv(t)
	dir := t.TempDir()
	out := serveExit2(t, dir, env...)
	require.Contains(t, out, "AUTHPIPE_LISTEN_ADDR")
	require.Contains(t, out, "AUTHPIPE_PROFILE=production")
	require.Contains(t, out, "AUTHPIPE_DEV_ALLOW_NETWORK_LISTEN=true")
	_, err := os.Stat(filepath.Join(dir, "data"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing created: no database, no generated key")

	// The explicit opt-in runs dev on the network.
	var addr string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "AUTHPIPE_LISTEN_ADDR="); ok {
			_, port, _ := net.SplitHostPort(v)
			addr = "127.0.0.1:" + port
		}
	}
	startServe(t, t.TempDir(), strings.Replace(addr, "127.0.0.1", "0.0.0.0", 1), append(env, "AUTHPIPE_DEV_ALLOW_NETWORK_LISTEN=true")...)
	waitFor(t, "http://"+addr+"/healthz", 10*time.Second, 200)
}

// With AUTHPIPE_OPS_LISTEN_ADDR, /healthz, /readyz and /metrics answer on their own
// listener and no longer on the main one, which keeps serving the API.
func TestOpsEndpointsOnTheirOwnListener(t *testing.T) {
	addr, opsAddr := freeAddr(t), freeAddr(t)
	startServe(t, t.TempDir(), addr, "AUTHPIPE_OPS_LISTEN_ADDR="+opsAddr)
	waitFor(t, "http://"+opsAddr+"/healthz", 10*time.Second, 200)
	waitFor(t, "http://"+opsAddr+"/readyz", 10*time.Second, 200)
	get := func(url string) (int, string) {
		t.Helper()
		res, err := http.Get(url)
		require.NoError(t, err)
		defer res.Body.Close()
		var body bytes.Buffer
		_, _ = body.ReadFrom(res.Body)
		return res.StatusCode, body.String()
	}
	status, body := get("http://" + opsAddr + "/metrics")
	require.Equal(t, 200, status)
	require.Contains(t, body, "# TYPE ")
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		status, _ := get("http://" + addr + p)
		require.Equal(t, 404, status, "the main listener does not serve %s", p)
	}
	status, _ = get("http://" + addr + "/v1/connections")
	require.Equal(t, 401, status, "the main listener serves the API")
	status, _ = get("http://" + opsAddr + "/v1/connections")
	require.Equal(t, 404, status, "the ops listener serves nothing else")
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// externalBench measures the server as a deployment sees it: the authpipe-proxy binary is
// built and started as its own process (on a fresh PostgreSQL database and on a SQLite
// file), and load comes from other processes — the harness's own Go generator (this
// binary re-executed as `loadgen`) and wrk when it is installed — over keep-alive
// connections. In the same run, interleaved round by round, it measures the baselines,
// served by a helper process (`serve-bare`): a bare net/http server writing the token
// endpoint's own answer, and a bare httputil.ReverseProxy to the same local upstream the
// forwarding proxy calls. Throughput runs lift the per-key rate limit
// (AUTHPIPE_RATE_LIMIT_PER_KEY=off); a last run per store restarts the server with the
// default limit and shows what one key and many keys get.
func externalBench(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("external", flag.ContinueOnError)
	conc := fs.Int("c", 32, "keep-alive connections per generator run")
	dur := fs.Duration("duration", 5*time.Second, "one measuring run (one generator, one target, one round)")
	rounds := fs.Int("rounds", 3, "interleaved rounds")
	nkeys := fs.Int("keys", 64, "API keys for the many-keys runs")
	stores := fs.String("stores", "postgres,sqlite", "comma-separated: postgres, sqlite")
	pgURL := fs.String("postgres-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server; a fresh database is created on it and dropped afterwards")
	gens := fs.String("generators", "loadgen,wrk", "comma-separated: loadgen (this harness, separate process), wrk (skipped when not installed)")
	size := fs.Int("size", 512, "upstream response bytes")
	profile := fs.String("profile", "", "directory: build the server with -tags authpipe_benchpprof and save CPU profiles of it under load (last round)")
	limited := fs.Bool("limited", true, "also run with the default per-key rate limit")
	only := fs.String("only", "", "token or forward: measure only that pair (default both)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *conc < 1 || *rounds < 1 || *dur < time.Second || *nkeys < 1 {
		return errors.New("-c, -rounds, -keys must be positive, -duration at least 1s")
	}
	dir, err := os.MkdirTemp("", "authpipe-bench-ext-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "authpipe-proxy")
	if err := buildServer(ctx, bin, *profile != ""); err != nil {
		return err
	}
	var generators []string
	for _, g := range strings.Split(*gens, ",") {
		switch g = strings.TrimSpace(g); {
		case g == "wrk" && !haveWrk():
			fmt.Fprintln(out, "# wrk not installed (scripts/deps/50-wrk.sh installs it): wrk runs skipped")
		case g == "wrk" || g == "loadgen":
			generators = append(generators, g)
		case g != "":
			return fmt.Errorf("unknown generator %q", g)
		}
	}
	e := &ext{only: *only, self: self, bin: bin, dir: dir, conc: *conc, dur: *dur, size: *size, profile: *profile, gens: generators}
	up, err := e.start(ctx, "upstream", self, []string{"serve-bare", "-upstream-addr", freeAddr(), "-size", fmt.Sprint(*size)}, nil)
	if err != nil {
		return err
	}
	defer up.stop()
	e.upstream = "http://" + up.addr
	for _, st := range strings.Split(*stores, ",") {
		if err := e.store(ctx, out, strings.TrimSpace(st), *pgURL, *nkeys, *rounds, *limited); err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
	}
	return nil
}

type ext struct {
	self, bin, dir, upstream, profile, only string
	conc, size                              int
	dur                                     time.Duration
	gens                                    []string
}

// proc is a started child process listening on addr.
type proc struct {
	cmd  *exec.Cmd
	addr string
	log  *os.File
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	if p.log != nil {
		p.log.Close()
	}
}

// start runs path args (env added) and waits until its first -*-addr (or
// AUTHPIPE_LISTEN_ADDR) answers HTTP.
func (e *ext) start(ctx context.Context, name, path string, args, env []string) (*proc, error) {
	logf, err := os.Create(filepath.Join(e.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, log: logf}
	for i, a := range args {
		if strings.HasSuffix(a, "-addr") && i+1 < len(args) {
			p.addr = args[i+1]
			break
		}
	}
	probe := "/"
	for _, v := range env {
		if a, ok := strings.CutPrefix(v, "AUTHPIPE_LISTEN_ADDR="); ok {
			p.addr, probe = a, "/readyz"
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		res, err := http.Get("http://" + p.addr + probe)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 || probe == "/" {
				return p, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			b, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("%s did not come up on %s: %v\n%s", name, p.addr, err, tail(b, 2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// buildServer builds cmd/authpipe-proxy into bin (with the pprof listener when profiling).
func buildServer(ctx context.Context, bin string, pprof bool) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	args := []string{"build", "-o", bin}
	if pprof {
		args = append(args, "-tags", "authpipe_benchpprof")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/authpipe-proxy")...)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, b)
	}
	return nil
}

// freeAddr is a loopback address with a port that was free a moment ago.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "ap_" + base64.RawURLEncoding.EncodeToString(b)
}

// target is one URL measured, with the keys its requests carry.
type target struct {
	name, url string
	keys      []string
	base      int // index of its baseline in the targets; -1 for a baseline
}

// store runs everything on one store.
func (e *ext) store(ctx context.Context, out io.Writer, st, pgURL string, nkeys, rounds int, limited bool) error {
	var dbURL string
	switch st {
	case "sqlite":
		dbURL = "sqlite://" + filepath.Join(e.dir, "bench.db")
	case "postgres":
		conn, err := pgx.Connect(ctx, pgURL)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		name := fmt.Sprintf("authpipe_bench_%d", time.Now().UnixNano())
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return err
		}
		defer conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") //nolint:errcheck
		dbURL = strings.Replace(pgURL, "/postgres?", "/"+name+"?", 1)
		if dbURL == pgURL {
			return errors.New("-postgres-url must name database postgres with a query string (…/postgres?sslmode=disable)")
		}
	default:
		return fmt.Errorf("unknown store %q", st)
	}
	boot := randomKey()
	listen := freeAddr()
	env := []string{
		"AUTHPIPE_DATABASE_URL=" + dbURL,
		"AUTHPIPE_KEK_URI=local://" + filepath.Join(e.dir, "kek.key"),
		"AUTHPIPE_CLIENT_SECRET_KEK_URI=local://" + filepath.Join(e.dir, "cs-kek.key"),
		"AUTHPIPE_LISTEN_ADDR=" + listen,
		"AUTHPIPE_BOOTSTRAP_API_KEY=" + boot,
		"AUTHPIPE_REFRESH_SCHEDULE=@every 1h",
		"AUTHPIPE_OUTBOUND_ALLOW_CIDRS=127.0.0.0/8",
	}
	pprofAddr := ""
	if e.profile != "" {
		pprofAddr = freeAddr()
		env = append(env, "AUTHPIPE_BENCH_PPROF_ADDR="+pprofAddr)
	}
	srv, err := e.start(ctx, "server-"+st, e.bin, []string{"serve"}, append(env, "AUTHPIPE_RATE_LIMIT_PER_KEY=off"))
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.stop()
		}
	}()
	base := "http://" + listen
	sc, err := setup(ctx, base, boot, e.upstream, nkeys)
	if err != nil {
		return err
	}
	bodyFile := filepath.Join(e.dir, "token-body.json")
	if err := os.WriteFile(bodyFile, sc.body, 0o600); err != nil {
		return err
	}
	tokAddr, rpAddr := freeAddr(), freeAddr()
	bare, err := e.start(ctx, "bare-"+st, e.self, []string{"serve-bare", "-token-addr", tokAddr, "-body-file", bodyFile,
		"-proxy-addr", rpAddr, "-proxy-to", e.upstream, "-api-key", sc.apiKey}, nil)
	if err != nil {
		return err
	}
	defer bare.stop()
	tokPath := "/v1/connections/" + sc.tokenConn + "/token"
	fwdPath := "/repos/octocat/hello-world"
	ts := []target{
		{"baseline: bare net/http, same body", "http://" + tokAddr + tokPath, sc.keys[:1], -1},
		{"GET /v1/connections/{id}/token, 1 key", base + tokPath, sc.keys[:1], 0},
		{fmt.Sprintf("GET /v1/connections/{id}/token, %d keys", len(sc.keys)), base + tokPath, sc.keys, 0},
		{"baseline: bare httputil.ReverseProxy", "http://" + rpAddr + fwdPath, sc.keys[:1], -1},
		{"GET /v1/proxy/{id}/..., 1 key", base + "/v1/proxy/" + sc.fwdConn + fwdPath, sc.keys[:1], 3},
		{fmt.Sprintf("GET /v1/proxy/{id}/..., %d keys", len(sc.keys)), base + "/v1/proxy/" + sc.fwdConn + fwdPath, sc.keys, 3},
	}
	switch e.only {
	case "token":
		ts = ts[:3]
	case "forward":
		ts = ts[3:]
		for i := range ts {
			ts[i].base = min(ts[i].base, 0)
		}
	}
	fmt.Fprintf(out, "\n## store %s — load average %s; server: separate process, AUTHPIPE_RATE_LIMIT_PER_KEY=off, log level info (default); %d connections, %s per run, %d interleaved rounds, token body %d bytes, upstream body %d bytes\n",
		st, loadavg(), e.conc, e.dur, rounds, len(sc.body), e.size)
	// Warm up every target (caches, connection pools, JIT of nothing: Go), not counted.
	for _, t := range ts {
		if _, err := e.measure(ctx, "loadgen", t, time.Second); err != nil {
			return err
		}
	}
	res := make([][][]load, len(e.gens)) // generator → target → rounds
	for g := range e.gens {
		res[g] = make([][]load, len(ts))
	}
	for r := range rounds {
		for g, gen := range e.gens {
			for i, t := range ts {
				var prof chan error
				if pprofAddr != "" && r == rounds-1 && gen == "loadgen" && t.base >= 0 && len(t.keys) > 1 {
					prof = make(chan error, 1)
					name := filepath.Join(e.profile, st+"-"+map[bool]string{true: "token", false: "forward"}[strings.Contains(t.url, "/token")]+".pprof")
					go func() { prof <- fetchProfile(pprofAddr, e.dur-time.Second, name) }()
				}
				l, err := e.measure(ctx, gen, t, e.dur)
				if err != nil {
					return err
				}
				if prof != nil {
					if err := <-prof; err != nil {
						fmt.Fprintln(out, "# profile:", err)
					}
				}
				res[g][i] = append(res[g][i], l)
			}
		}
	}
	for g, gen := range e.gens {
		fmt.Fprintf(out, "\n### generator: %s (%s)\n", gen, map[string]string{
			"loadgen": "go run ./bench loadgen, a separate process", "wrk": "wrk -t2, Lua script rotating keys and counting non-2xx"}[gen])
		report(out, ts, res[g])
	}
	fmt.Fprintf(out, "(load average after the runs: %s)\n", loadavg())
	if limited {
		srv.stop()
		stopped = true
		srv2, err := e.start(ctx, "server-limited-"+st, e.bin, []string{"serve"}, env)
		if err != nil {
			return err
		}
		defer srv2.stop()
		fmt.Fprintf(out, "\n### default per-key rate limit (AUTHPIPE_RATE_LIMIT_PER_KEY unset), loadgen, %s each\n", e.dur)
		lim := ts[:min(3, len(ts))]
		var ls [][]load
		for _, t := range lim {
			l, err := e.measure(ctx, "loadgen", t, e.dur)
			if err != nil {
				return err
			}
			ls = append(ls, []load{l})
		}
		report(out, lim, ls)
	}
	return nil
}

// measure runs one generator against one target for d.
func (e *ext) measure(ctx context.Context, gen string, t target, d time.Duration) (load, error) {
	if gen == "wrk" {
		return runWrk(ctx, e.dir, t.url, e.conc, d, t.keys)
	}
	kf := filepath.Join(e.dir, "keys.txt")
	if err := os.WriteFile(kf, []byte(strings.Join(t.keys, "\n")), 0o600); err != nil {
		return load{}, err
	}
	cmd := exec.CommandContext(ctx, e.self, "loadgen", "-url", t.url, "-c", fmt.Sprint(e.conc), "-duration", d.String(), "-keys-file", kf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return load{}, fmt.Errorf("loadgen: %v: %s", err, stderr.Bytes())
	}
	var l load
	if err := json.Unmarshal(b, &l); err != nil {
		return load{}, fmt.Errorf("loadgen output: %v: %q", err, b)
	}
	return l, nil
}

// fetchProfile saves a CPU profile of the server, taken for d, to path.
func fetchProfile(addr string, d time.Duration, path string) error {
	res, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(1, int(d.Seconds()))))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("pprof: %s", res.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, res.Body)
	return err
}

// loadavg is the machine's 1, 5 and 15 minute load average ("?" where unknown).
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

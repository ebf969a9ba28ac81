// Command bench is authpipe-proxy's benchmark harness. Each sub-command measures one
// path and prints its figures next to a baseline measured in the same run on the same
// machine, as ratios, so that numbers from different machines can be compared:
//
//	go run ./bench external [-stores postgres,sqlite] [-c 32] [-duration 5s] [-rounds 3]
//	go run ./bench rotation [-n 5000] [-batch 200] [-workers 4] [-database-url URL]
//	go run ./bench list
//
// Results are recorded in docs/BENCHMARKS.md with the command that produced them. To add
// a benchmark, write a func(ctx, args, out) error in a file of its own and add it to
// commands().
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"text/tabwriter"
	"time"
)

// command is one benchmark.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) error
}

// commands is the table of benchmarks, by name.
func commands() map[string]command {
	return map[string]command{
		"external":   {"the server binary as its own process (PostgreSQL, SQLite) under load from other processes (own generator, wrk): token endpoint vs bare net/http, forwarding vs bare httputil.ReverseProxy; req/s, p50, p99, every non-2xx", externalBench},
		"loadgen":    {"(used by external) keep-alive load generator printing one JSON result", loadgenCmd},
		"serve-bare": {"(used by external) the baselines: a local upstream, a bare net/http server, a bare httputil.ReverseProxy", serveBareCmd},
		"forward":    {"forwarding proxy (/v1/proxy) vs calling the same local upstream directly: req/s, p99, ratio", forwardBench},
		"rotation":   {"KEK rotation throughput (DEKs/s): local and SoftHSM2 backends vs a bare AES-GCM wrap loop", rotationBench},
		"refresh":    {"refresher sweep of N due connections vs the ideal workers ÷ provider latency (refreshes/s)", refreshBench},
		"token":      {"token endpoint (cached, valid token) vs a bare net/http handler with the same body: req/s, p99, ratio", tokenBench},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, out, errOut io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "list" || args[0] == "-h" || args[0] == "--help" {
		usage(out, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(errOut, "bench: unknown benchmark %q\n", args[0])
		usage(errOut, cmds)
		return 2
	}
	if args[0] != "loadgen" && args[0] != "serve-bare" { // their stdout is read by external
		fmt.Fprintf(out, "# %s — %s, %s/%s, %d CPUs (GOMAXPROCS %d), %s\n", args[0], runtime.Version(),
			runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	}
	if err := c.run(ctx, args[1:], out); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(errOut, "bench "+args[0]+":", err)
		return 1
	}
	return 0
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: go run ./bench <benchmark> [flags]")
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
}

// result is one measured line: ops operations in d.
type result struct {
	name string
	ops  int64
	d    time.Duration
	note string
}

func (r result) rate() float64 { return float64(r.ops) / r.d.Seconds() }

// table prints results with their rate and the ratio to the first one (the baseline).
func table(w io.Writer, unit string, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "name\t%s\tratio\ttime\t\n", unit)
	base := rs[0].rate()
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.0f\t%.4f\t%s\t%s\n", r.name, r.rate(), r.rate()/base, r.d.Round(time.Millisecond), r.note)
	}
	_ = tw.Flush()
}

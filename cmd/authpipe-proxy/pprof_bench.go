//go:build authpipe_benchpprof

package main

// Only in binaries built with -tags authpipe_benchpprof (the benchmark harness, `go run
// ./bench external -profile DIR`): net/http/pprof on AUTHPIPE_BENCH_PPROF_ADDR, a loopback
// listener of its own, so that the server process can be profiled under external load.
// Release builds have no such listener and no such variable.

import (
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
)

func init() {
	addr := os.Getenv("AUTHPIPE_BENCH_PPROF_ADDR")
	if addr == "" {
		return
	}
	if host, _, err := net.SplitHostPort(addr); err != nil || !net.ParseIP(host).IsLoopback() {
		panic("AUTHPIPE_BENCH_PPROF_ADDR must be a loopback host:port")
	}
	go func() { _ = http.ListenAndServe(addr, nil) }()
}

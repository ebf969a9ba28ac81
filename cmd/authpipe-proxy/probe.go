package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/config"
)

// probeCommand is `authpipe-proxy probe`: GET the local /readyz (or /healthz) and exit 0
// on 200, 1 otherwise: the container image's HEALTHCHECK (distroless has no curl or
// shell). It reads only the listen addresses from the environment
// (AUTHPIPE_OPS_LISTEN_ADDR when set, else AUTHPIPE_LISTEN_ADDR) and whether TLS is on
// (AUTHPIPE_TLS_CERT_FILE), and connects to loopback on that port.
func probeCommand() *command {
	var path, addr string
	var timeout time.Duration
	return &command{
		path: "probe", usage: "[--path /readyz|/healthz] [--addr HOST:PORT]",
		summary:    "GET the local /readyz (or /healthz); exit 0 when it answers 200 (a container HEALTHCHECK)",
		noSettings: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&path, "path", "/readyz", "/readyz or /healthz")
			fs.StringVar(&addr, "addr", "", "address to probe (default: the ops or main listen address, on loopback)")
			fs.DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
		},
		args: func(args []string) error {
			if len(args) != 0 {
				return usageError{msg: "probe: takes no arguments"}
			}
			if path != "/readyz" && path != "/healthz" {
				return usageError{msg: "probe: --path must be /readyz or /healthz"}
			}
			if timeout <= 0 {
				return usageError{msg: "probe: --timeout must be positive"}
			}
			return nil
		},
		run: func(ctx context.Context, c *call) error {
			target := probeAddr(addr)
			scheme := "http"
			// Health probes need no client certificate; the probe sends nothing secret and
			// trusts only the status code, so it does not verify the server's name
			// (a certificate for the public name does not cover 127.0.0.1).
			tr := &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}} //nolint:gosec // loopback status probe
			if os.Getenv(config.EnvTLSCertFile) != "" {
				scheme = "https"
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+target+path, nil)
			if err != nil {
				return err
			}
			res, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				return fmt.Errorf("probe: %w", err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("probe: %s answered %d", path, res.StatusCode)
			}
			fmt.Fprintf(c.stdout, "%s %d\n", path, res.StatusCode)
			return nil
		},
	}
}

// probeAddr is where the probe connects: addr if given, else the listen address of the
// operations endpoints from the environment, with an unspecified host made loopback.
func probeAddr(addr string) string {
	if addr != "" {
		return addr
	}
	addr = strings.TrimSpace(os.Getenv(config.EnvOpsListenAddr))
	if addr == "" {
		addr = strings.TrimSpace(os.Getenv(config.EnvListenAddr))
	}
	if addr == "" {
		addr = "127.0.0.1:8080" // the default of AUTHPIPE_LISTEN_ADDR
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch ip := net.ParseIP(host); {
	case host == "" || ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

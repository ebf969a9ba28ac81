package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/config"
)

// probeCommand is `authpipe-proxy probe [URL]`: GET the local /readyz (or /healthz) and
// exit 0 on 200, 1 otherwise: the container image's HEALTHCHECK (distroless has no curl
// or shell). Without a URL it reads only the listen addresses from the environment
// (AUTHPIPE_OPS_LISTEN_ADDR when set, else AUTHPIPE_LISTEN_ADDR) and whether TLS is on
// (AUTHPIPE_TLS_CERT_FILE), and connects to loopback on that port. With a URL (the
// chart's `helm test`: the Service's /readyz) it asks that one.
func probeCommand() *command {
	var path, addr string
	var timeout time.Duration
	var target *url.URL
	return &command{
		path: "probe", usage: "[--path /readyz|/healthz] [--addr HOST:PORT] [URL]",
		summary:    "GET the local /readyz (or /healthz); exit 0 when it answers 200 (a container HEALTHCHECK)",
		noSettings: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&path, "path", "/readyz", "/readyz or /healthz")
			fs.StringVar(&addr, "addr", "", "address to probe (default: the ops or main listen address, on loopback)")
			fs.DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
		},
		args: func(args []string) error {
			if len(args) > 1 {
				return usageError{msg: "probe: want at most one URL"}
			}
			if len(args) == 1 {
				u, err := url.Parse(args[0])
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return usageError{msg: "probe: the URL must be http(s)://host[:port]/readyz or /healthz"}
				}
				target, path = u, u.Path
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
			if target == nil {
				target = &url.URL{Scheme: "http", Host: probeAddr(addr), Path: path}
				if os.Getenv(config.EnvTLSCertFile) != "" {
					target.Scheme = "https"
				}
			}
			// Health probes need no client certificate; the probe sends nothing secret and
			// trusts only the status code, so it does not verify the server's name
			// (a certificate for the public name does not cover 127.0.0.1).
			tr := &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}} //nolint:gosec // loopback status probe
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
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

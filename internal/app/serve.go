package app

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/internal/tracing"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// Serve runs the HTTP server (and the operations endpoints' own one when
// AUTHPIPE_OPS_LISTEN_ADDR is set) until ctx ends, then shuts down gracefully (drain):
// /readyz answers 503 at once, so load balancers and Kubernetes stop sending requests;
// after AUTHPIPE_SHUTDOWN_DELAY the listeners close and in-flight requests finish
// (bounded by AUTHPIPE_SHUTDOWN_TIMEOUT); then the background workers stop and queued
// audit events are written.
// Start-up work that needs the database or the KMS runs in the background and is retried
// until it succeeds, so a dependency that is down never stops the server: /healthz
// answers at once, /readyz says 503 until everything is reachable.
func (a *App) Serve(ctx context.Context, ready func(addr string)) error {
	// OpenTelemetry tracing, when the standard OTEL_* variables configure an exporter
	// (internal/tracing.Setup); its last spans are flushed when Serve returns.
	stopTracing, err := tracing.Setup(ctx, os.Getenv)
	if err != nil {
		return &ConfigError{Var: "OTEL_TRACES_EXPORTER", Err: err}
	}
	if tracing.Enabled() {
		a.Log.Info("tracing on: spans exported over OTLP/HTTP")
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			a.Log.Warn("tracing: flushing the last spans", "err", err)
		}
	}()
	var tlsConfig *tls.Config
	if a.Config.TLSEnabled() {
		files, err := newTLSFiles(a.Config.TLSCertFile, a.Config.TLSKeyFile, a.Config.TLSClientCAFile, a.Log)
		if err != nil {
			return &ConfigError{Var: config.EnvTLSCertFile, Err: err}
		}
		tlsConfig = files.serverConfig()
	}
	ln, err := listen(a.Config.ListenAddr, config.EnvListenAddr, tlsConfig)
	if err != nil {
		return err
	}
	srv := a.httpServer(a.Server.Handler())
	// The operations endpoints on their own listener (AUTHPIPE_OPS_LISTEN_ADDR), so that
	// an Ingress in front of the main one never exposes them.
	var ops *http.Server
	if a.Config.OpsListenAddr != "" {
		opsLn, err := listen(a.Config.OpsListenAddr, config.EnvOpsListenAddr, tlsConfig)
		if err != nil {
			_ = ln.Close()
			return err
		}
		ops = a.httpServer(a.Server.OpsHandler())
		go func() { _ = ops.Serve(opsLn) }()
		a.Log.Info("operations endpoints listening", "addr", opsLn.Addr().String())
	}
	logTransportSecurity(a.Log, a.Config, a.catalog())

	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.Audit.Run(bg) }()
	go func() {
		defer wg.Done()
		a.bootstrapLoop(bg)
		if bg.Err() == nil { // after migrations: the binding columns exist
			// This goroutine still counts in wg, so Wait has not returned.
			wg.Add(1)
			go func() { defer wg.Done(); a.bindOriginsLoop(bg) }() // bindorigins.go
		}
		if a.ControlPlane != nil && bg.Err() == nil { // after migrations: the outbox exists
			a.ControlPlane.Run(bg, a.ConfigImport())
		}
	}()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if err := a.Refresher.Start(bg); err != nil {
		a.Log.Error("refresh schedule", "err", err)
	}
	defer a.Refresher.Stop()
	defer a.startLifecycle(bg)() // lifecycle.go: revocation retries, checkpoints, purge
	a.Log.Info("authpipe-proxy listening", "addr", ln.Addr().String(), "tls", a.Config.TLSEnabled(),
		"profile", string(a.Config.Profile), "database", a.Store.Dialect())
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case err = <-errc:
	case <-ctx.Done():
		a.draining.Store(true)
		a.Server.SetReady(false)
		a.Log.Info("shutting down: /readyz answers 503; draining", "delay_ms", a.Config.ShutdownDelay.Milliseconds())
		var failed error
		select {
		case failed = <-errc: // the listener failed while draining
		case <-time.After(a.Config.ShutdownDelay):
		}
		sctx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout)
		if ops != nil {
			_ = ops.Shutdown(sctx)
		}
		if err = srv.Shutdown(sctx); failed != nil {
			err = failed
		}
		cancel()
	}
	// Reads already served wait in the audit writer as counted groups: write them before it
	// goes, on every way out (a failed listener too), under a deadline of their own — long
	// forwards may have used up the shutdown's.
	actx, acancel := context.WithTimeout(context.Background(), auditStopTimeout)
	a.Audit.Stop(actx)
	acancel()
	if ops != nil {
		_ = ops.Close() // the main server failed: stop the probes answering too
	}
	stopBG()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// listen opens a TCP listener on addr (the setting name for errors), TLS when tlsConfig
// is set.
func listen(addr, setting string, tlsConfig *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ConfigError{Var: setting, Err: err}
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	return ln, nil
}

// httpServer is the http.Server of a listener: bounded reads and headers.
func (a *App) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// TLS handshake failures (a TLS 1.2 client, a client certificate from another CA,
		// scanners) go to the app's logger at debug level, not to stderr.
		ErrorLog: slog.NewLogLogger(a.Log.Handler(), slog.LevelDebug),
	}
}

func (a *App) bootstrapLoop(ctx context.Context) {
	delay := 250 * time.Millisecond
	for {
		bctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := a.Bootstrap(bctx)
		cancel()
		if err == nil {
			a.Server.SetReady(true)
			if a.draining.Load() { // shutdown began meanwhile: stay not ready
				a.Server.SetReady(false)
			}
			a.Log.Info("ready")
			// The connections gauge at once, not a minute later; only now, when the
			// schema exists (a fresh database is migrated by Bootstrap).
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := a.CountConnections(cctx); err != nil && ctx.Err() == nil {
				a.Log.WarnContext(cctx, "lifecycle job failed", "job", "connections", "err", err)
			}
			cancel()
			return
		}
		a.Log.Warn("start-up work failed; retrying", "err", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// catalog is the built-in provider catalog for the start-up log (nil if it fails to load,
// which New has already ruled out).
func (a *App) catalog() *oauthflow.Catalog {
	c, err := oauthflow.LoadCatalog()
	if err != nil {
		return nil
	}
	return c
}

// auditStopTimeout bounds the audit writer's last flush at shutdown.
const auditStopTimeout = 10 * time.Second

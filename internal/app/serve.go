package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Serve runs the HTTP server until ctx ends, then shuts down gracefully: in-flight
// requests finish (bounded by the shutdown timeout) and queued audit events are written.
// Start-up work that needs the database or the KMS runs in the background and is retried
// until it succeeds, so a dependency that is down never stops the server: /healthz
// answers at once, /readyz says 503 until everything is reachable.
func (a *App) Serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", a.Config.ListenAddr)
	if err != nil {
		return &ConfigError{Var: "AUTHPIPE_LISTEN_ADDR", Err: err}
	}
	if a.Config.TLSEnabled() {
		certs, err := newCertReloader(a.Config.TLSCertFile, a.Config.TLSKeyFile)
		if err != nil {
			_ = ln.Close()
			return &ConfigError{Var: "AUTHPIPE_TLS_CERT_FILE", Err: err}
		}
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: certs.get,
			NextProtos: []string{"h2", "http/1.1"}})
	}
	srv := &http.Server{
		Handler:           a.Server.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}

	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.Audit.Run(bg) }()
	go func() { defer wg.Done(); a.bootstrapLoop(bg) }()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.Log.Info("authpipe-proxy listening", "addr", ln.Addr().String(), "tls", a.Config.TLSEnabled(),
		"profile", string(a.Config.Profile), "database", a.Store.Dialect())
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case err = <-errc:
	case <-ctx.Done():
		a.Log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout)
		err = srv.Shutdown(sctx)
		a.Audit.Stop(sctx)
		cancel()
	}
	stopBG()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (a *App) bootstrapLoop(ctx context.Context) {
	delay := 250 * time.Millisecond
	for {
		bctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := a.Bootstrap(bctx)
		cancel()
		if err == nil {
			a.Server.SetReady(true)
			a.Log.Info("ready")
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

// certReloader serves the certificate on disk, reloading it when the files change
// (Kubernetes rotates mounted secrets in place). It checks at most every 5 seconds.
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
	checked time.Time
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) load() error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load certificate: %w", err)
	}
	st, err := os.Stat(r.certFile)
	if err != nil {
		return err
	}
	r.cert, r.modTime = &cert, st.ModTime()
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) > 5*time.Second {
		r.checked = time.Now()
		if st, err := os.Stat(r.certFile); err == nil && !st.ModTime().Equal(r.modTime) {
			_ = r.load() // on a half-written pair keep serving the old one; retried next check
		}
	}
	return r.cert, nil
}

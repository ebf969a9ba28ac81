// Package app builds authpipe-proxy's object graph from a config.Config and runs it: the
// KEK rings, the store, the two keyrings, the audit writer and the HTTP server. The CLI
// (cmd/authpipe-proxy) only parses arguments and calls in here.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/metrics"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/ratelimit"
	"github.com/authpipe/authpipe-proxy/internal/tracing"
	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/backends"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/providers"
	"github.com/authpipe/authpipe-proxy/proxy"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// ConfigError is a problem with a setting found while opening (a KEK file that is
// world-readable, say): the CLI prints it on one line and exits 2.
type ConfigError struct {
	Var string
	Err error
}

func (e *ConfigError) Error() string { return e.Var + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// App is the running proxy.
type App struct {
	Config  config.Config
	Log     *slog.Logger
	Store   *store.Store
	Creds   *vault.Keyring
	Secrets *vault.Keyring
	Audit   *audit.Batcher
	// Admin is the administration the API's admin routes and the CLI both call.
	Admin  *admin.Service
	Server *proxy.Server
	// Providers is the workspaces' provider configurations (the API, the control-plane
	// import, forwarding and the refresher resolve providers there).
	Providers *providers.Service
	Metrics   *metrics.Metrics // one registry for this App, served on /metrics
	// Refresher refreshes tokens on demand and on AUTHPIPE_REFRESH_SCHEDULE (refresher.go).
	Refresher *refresher.Refresher
	// Revocations disconnects connections and revokes their tokens, and retries the
	// revocations a provider could not take (lifecycle.go).
	Revocations *refresher.Revocations
	// Importer imports existing OAuth grants (POST /v1/connections with oauth2 and
	// `authpipe-proxy import` both reach oauthflow.Importer).
	Importer *oauthflow.Importer
	// Incidents rotates the tokens an incident exposed (POST /v1/incidents/rotate,
	// `incident rotate`; docs/incident-response.md).
	Incidents *refresher.Incidents
	// ControlPlane is the link to the control plane; nil when standalone.
	ControlPlane *controlplane.Client

	rings []*kms.Ring
	// draining: shutdown has begun; /readyz stays 503 (serve.go).
	draining atomic.Bool
	lc       lifecycleState // lifecycle.go: purge, revocation retries, audit checkpoints
}

// Option configures New.
type Option func(*options)

type options struct {
	logOut io.Writer
	now    func() time.Time
	cpOpts []controlplane.Option
	// kekRings, when set, replace the rings AUTHPIPE_KEK_URI and
	// AUTHPIPE_CLIENT_SECRET_KEK_URI name (credentials, client secrets).
	kekRings [2]*kms.Ring
	// existing: create nothing (WithExisting).
	existing bool
}

// WithExisting makes New open only what already exists: a missing local KEK file or
// SQLite database is an error, not created (the read-only commands: kek status,
// config check).
func WithExisting() Option { return func(o *options) { o.existing = true } }

// WithKEKs makes New use these KEK rings instead of opening the configured URIs (tests
// inject KEKs they can switch off). The App closes them.
func WithKEKs(cred, secret *kms.Ring) Option {
	return func(o *options) { o.kekRings = [2]*kms.Ring{cred, secret} }
}

// openRing returns the injected ring, or opens the configured one.
func openRing(ctx context.Context, injected *kms.Ring, current string, previous []string, opts backends.Options) (*kms.Ring, error) {
	if injected != nil {
		return injected, nil
	}
	return backends.OpenRing(ctx, current, previous, opts)
}

// WithLogOutput sends logs to w (default os.Stderr).
func WithLogOutput(w io.Writer) Option { return func(o *options) { o.logOut = w } }

// WithClock injects the clock.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// NewLogger returns the slog logger the configuration asks for.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	ho := &slog.HandlerOptions{Level: cfg.LogLevel}
	// tracing.LogHandler: trace_id and span_id on lines logged within a span.
	if cfg.LogFormat == config.LogFormatText {
		return slog.New(tracing.LogHandler(slog.NewTextHandler(w, ho)))
	}
	return slog.New(tracing.LogHandler(slog.NewJSONHandler(w, ho)))
}

// New opens everything the configuration names. It needs no network: a database or KMS
// that is down is found later, by readiness and by the requests that need it.
func New(ctx context.Context, cfg config.Config, opts ...Option) (*App, error) {
	o := options{logOut: os.Stderr, now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	a := &App{Config: cfg, Log: NewLogger(cfg, o.logOut), lc: lifecycleState{now: o.now}}
	kopts := backends.Options{CreateLocal: !cfg.Production() && !o.existing, Logger: a.Log}
	if path, ok := cfg.SQLitePath(); ok && o.existing && path != ":memory:" {
		if _, err := os.Stat(path); err != nil {
			return nil, &ConfigError{Var: config.EnvDatabaseURL, Err: fmt.Errorf("no database at %s (serve or migrate creates it)", path)}
		}
	}
	credRing, err := openRing(ctx, o.kekRings[0], cfg.KEKURI, cfg.KEKPreviousURIs, kopts)
	if err != nil {
		return nil, &ConfigError{Var: config.EnvKEKURI, Err: err}
	}
	secRing, err := openRing(ctx, o.kekRings[1], cfg.ClientSecretKEKURI, cfg.ClientSecretKEKPreviousURIs, kopts)
	if err != nil {
		_ = credRing.Close()
		return nil, &ConfigError{Var: config.EnvClientSecretKEKURI, Err: err}
	}
	if credRing.Current().ID() == secRing.Current().ID() {
		_ = credRing.Close()
		_ = secRing.Close()
		return nil, &ConfigError{Var: config.EnvClientSecretKEKURI, Err: errors.New("must be a different key from AUTHPIPE_KEK_URI")}
	}
	a.Metrics = metrics.New(metrics.BuildInfo{})
	credRing, secRing = kms.ObserveRing(credRing, a.Metrics.KEKObserver), kms.ObserveRing(secRing, a.Metrics.KEKObserver)
	a.rings = []*kms.Ring{credRing, secRing}
	a.Store, err = store.Open(ctx, cfg.DatabaseURL, store.WithLogger(a.Log), store.WithClock(o.now), store.WithListenURL(cfg.DatabaseListenURL))
	if err != nil {
		a.Close()
		return nil, &ConfigError{Var: config.EnvDatabaseURL, Err: err}
	}
	if sqlDB, err := a.Store.DB().DB(); err == nil { // pool statistics on /metrics (go_sql_*)
		if err := a.Metrics.ObserveDB(sqlDB); err != nil {
			a.Close()
			return nil, err
		}
	}
	kr := []vault.Option{vault.WithCacheTTL(cfg.DEKCacheTTL), vault.WithLogger(a.Log), vault.WithClock(o.now)}
	if a.Creds, err = vault.NewKeyring(vault.PurposeCredentials, credRing, a.Store, kr...); err != nil {
		a.Close()
		return nil, err
	}
	if a.Secrets, err = vault.NewKeyring(vault.PurposeClientSecrets, secRing, a.Store, kr...); err != nil {
		a.Close()
		return nil, err
	}
	a.Audit = audit.NewBatcher(a.Store, audit.BatchOptions{Logger: a.Log, Now: o.now, OnWrite: a.Metrics.AuditWrite,
		Anomalies: a.anomalyOptions()}) // anomaly.go
	catalog, err := oauthflow.LoadCatalog()
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("provider catalog: %w", err)
	}
	// Provider calls: TLS 1.3 (or a provider's min_tls_version "1.2"), its pins, the system
	// roots plus AUTHPIPE_OUTBOUND_CA_FILE; refusals counted on /metrics (tls.go).
	providerClients, err := ProviderClients(cfg, a.Log, a.Metrics.Registry())
	if err != nil {
		a.Close()
		return nil, err
	}
	forwardClients, err := ForwardClients(cfg, a.Log, a.Metrics.Registry())
	if err != nil {
		a.Close()
		return nil, err
	}
	// The forwarding proxy's client: same address policy as every provider call, no body
	// cap (forwards stream), a longer overall budget.
	fwd, err := outbound.New(outbound.Policy{AllowCIDRs: cfg.OutboundAllowCIDRs, MaxResponseBytes: outbound.NoResponseLimit,
		Timeouts: outbound.Timeouts{Overall: 2 * time.Minute}}, outbound.WithLogger(a.Log))
	if err != nil {
		a.Close()
		return nil, err
	}
	a.Providers, err = providers.New(providers.Settings{PublicURL: cfg.PublicURL,
		URLs: providers.URLPolicy{Dev: !cfg.Production(), AllowCIDRs: cfg.OutboundAllowCIDRs}},
		a.Store, a.Secrets, catalog, providers.WithClock(o.now))
	if err != nil {
		a.Close()
		return nil, err
	}
	events, err := a.newControlPlane(cfg, o)
	if err != nil {
		a.Close()
		return nil, err
	}
	if err := a.newRefresher(o.now); err != nil {
		a.Close()
		return nil, err
	}
	if a.Admin, err = admin.New(admin.Config{}, admin.Deps{Store: a.Store, Creds: a.Creds, Secrets: a.Secrets,
		Revoker: a.Revocations},
		admin.WithLogger(a.Log), admin.WithClock(o.now)); err != nil {
		a.Close()
		return nil, err
	}
	if a.Importer, err = oauthflow.NewImporter(oauthflow.ImportDeps{Store: a.Store, Providers: a.Providers, Creds: a.Creds,
		ValidEndUser: admin.ValidEndUserID}, o.now, a.Log); err != nil {
		a.Close()
		return nil, err
	}
	a.Server, err = proxy.New(proxy.Config{
		PublicURL:          cfg.PublicURL,
		Dev:                !cfg.Production(),
		OutboundAllowCIDRs: cfg.OutboundAllowCIDRs,
		SeparateOps:        cfg.OpsListenAddr != "",
		AccessLog:          cfg.AccessLog,
		Edge: proxy.EdgeConfig{TrustedProxies: cfg.TrustedProxies,
			PerKey: edgeLimit(cfg.RateLimitPerKey), PerIP: edgeLimit(cfg.RateLimitPerIP)},
	}, proxy.Deps{Admin: a.Admin, Store: a.Store, Creds: a.Creds, Secrets: a.Secrets, Audit: a.Audit, Providers: a.Providers,
		Tokens: refresher.NewTokens(a.Store, a.Creds, a.Refresher, o.now), Events: events, Revocations: a.Revocations,
		Incidents: a.Incidents},
		proxy.WithLogger(a.Log), proxy.WithClock(o.now), proxy.WithMetrics(a.Metrics), proxy.WithOutbound(fwd),
		proxy.WithClientCertBinding(cfg.TLSClientCAFile != ""), proxy.WithProviderClients(providerClients),
		proxy.WithForwardClients(forwardClients))
	if err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Migrate brings the database to the current schema and makes sure the default
// workspace and the deployment id exist; it returns the migrations it applied. It is
// idempotent.
func (a *App) Migrate(ctx context.Context) ([]string, error) {
	applied, err := a.Store.Migrate(ctx)
	if err != nil {
		return nil, err
	}
	if err := a.Store.EnsureDefaultWorkspace(ctx); err != nil {
		return nil, err
	}
	if _, err := a.Store.EnsureDeploymentID(ctx, ids.New(ids.Deployment)); err != nil {
		return nil, fmt.Errorf("deployment id: %w", err)
	}
	return applied, nil
}

// Bootstrap is Migrate, and makes sure the bootstrap key exists. It is idempotent.
func (a *App) Bootstrap(ctx context.Context) error {
	if _, err := a.Migrate(ctx); err != nil {
		return err
	}
	if !a.Config.BootstrapAPIKey.IsZero() {
		err := a.Admin.EnsureBootstrapKey(ctx, a.Config.BootstrapAPIKey)
		switch {
		case errors.Is(err, admin.ErrBootstrapKeyRevoked):
			a.Log.Error("the key in "+config.EnvBootstrapAPIKey+" was revoked; it stays revoked and is not recreated: remove the variable",
				"env", config.EnvBootstrapAPIKey)
		case err != nil:
			return fmt.Errorf("bootstrap API key: %w", err)
		}
	}
	return nil
}

// Close releases what New opened.
func (a *App) Close() {
	if a.Store != nil {
		_ = a.Store.Close()
	}
	for _, r := range a.rings {
		_ = r.Close()
	}
}

// edgeLimit maps a configured rate limit onto the edge's (off: a negative rate).
func edgeLimit(l config.RateLimit) ratelimit.Limit {
	if l.Off {
		return ratelimit.Limit{Rate: -1}
	}
	return ratelimit.Limit{Rate: l.PerSecond, Burst: l.Burst}
}

// ErrNoDeploymentID: the database holds no deployment id yet (neither serve nor migrate
// has run on it).
var ErrNoDeploymentID = errors.New("app: no deployment id yet")

// DeploymentID reads this deployment's id from the configured database without opening
// anything else (the CLI's version command); ErrNoDeploymentID before the first serve or
// migrate has created it.
func DeploymentID(ctx context.Context, cfg config.Config) (string, error) {
	if path, ok := cfg.SQLitePath(); ok && path != ":memory:" {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return "", ErrNoDeploymentID // not created by asking
		}
	}
	s, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return "", &ConfigError{Var: config.EnvDatabaseURL, Err: err}
	}
	defer s.Close()
	id, err := s.DeploymentID(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrNoDeploymentID
	}
	return id, err
}

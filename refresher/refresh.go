// Package refresher keeps OAuth tokens fresh and API keys checked: a cron sweep
// (robfig/cron/v3) that claims due connections by the indexed next_refresh_at and refreshes
// them with a bounded worker pool and a per-provider concurrency limit, and on-demand
// refreshes for the token endpoint, with exactly one refresh per connection at a time
// across every replica.
//
// The protocol (lease.go): an in-process single-flight per connection, then a lease row
// claimed in a short transaction that locks the connection row; the refresh_token grant
// (RFC 6749 section 6) runs outside any transaction; its result — including a rotated
// refresh token (RFC 9700 section 4.14.2) — is committed in the transaction that releases
// the lease, fenced by the lease holder and the connection's version, so a replica that
// lost its lease throws its result away and nothing else ever sees a token before it is
// committed. Results ready at the same moment share that transaction, each fenced on its
// own, with one audit chain append (commit.go). A request that finds another replica refreshing waits and re-reads instead
// of refreshing again.
//
// Failures (failure.go): invalid_grant is re-checked against the row and then makes the
// connection needs_reauth, for good; 429 honours Retry-After; everything else backs off
// exponentially with jitter while the current token is served until it expires.
//
// next_refresh_at is the refresh deadline: a token is due once now ≥ next_refresh_at −
// lead. After a refresh it is the expiry minus a random jitter, so refreshes of tokens
// issued together spread out. The package knows nothing of HTTP handlers.
package refresher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/jitter"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Errors of on-demand refreshes, each carrying the problem the API answers with.
var (
	// ErrNeedsReauth: the provider refused the refresh token; the user must reconnect (409).
	ErrNeedsReauth = problem.Sentinel(problem.ErrNeedsReauth, "refresher: connection needs re-authorization")
	// ErrDisconnected: the connection is disconnected or has no credential (410).
	ErrDisconnected = problem.Sentinel(problem.ErrDisconnected, "refresher: connection disconnected")
	// ErrWorkspaceFrozen: the connection's workspace is frozen (incident response, 423).
	ErrWorkspaceFrozen = problem.Sentinel(problem.ErrWorkspaceFrozen, "refresher: workspace frozen")
	// ErrUnavailable: the token could not be refreshed now (provider down, rate limited,
	// cooling down, another replica still busy, the caller's deadline) and the current one
	// has expired (503, Retry-After 5 s).
	ErrUnavailable = problem.Sentinel(problem.ErrRefreshUnavailable.
			WithDetail("the provider could not refresh the token now").WithRetryAfter(5), "refresher: refresh unavailable")
)

// Store is what the refresher needs of the store.
type Store interface {
	ClaimRefresh(ctx context.Context, req store.ClaimRequest) (store.Claim, error)
	ClaimDue(ctx context.Context, holder string, dueBefore, now, leaseUntil time.Time, limit int) ([]store.ConnectionCredential, error)
	// CommitRefreshes commits a group of refreshes in one transaction (commit.go).
	CommitRefreshes(ctx context.Context, rcs []store.RefreshCommit) ([]store.CommitOutcome, error)
	FailRefresh(ctx context.Context, f store.RefreshFailure) (store.Connection, int, error)
	HealthOK(ctx context.Context, workspaceID, id, holder string, version int64, next *time.Time, now time.Time, evs ...audit.Event) (store.Connection, error)
	ReleaseRefresh(ctx context.Context, id, holder string, next *time.Time, clearNext bool, now time.Time) error
	RefreshStateOf(ctx context.Context, id string) (store.RefreshState, error)
	CountDue(ctx context.Context, dueBefore time.Time) (int64, error)
	// NotifyExpiring marks connections whose refresh token ends before `before` and appends
	// one event each, once per expiry (expiring.go).
	NotifyExpiring(ctx context.Context, before time.Time, limit int, mk func(store.Connection) audit.Event) ([]store.Connection, error)
}

// Sealer seals and opens credential fields (vault.Keyring of purpose credentials).
type Sealer interface {
	Seal(ctx context.Context, b vault.Binding, plaintext vault.Secret) ([]byte, error)
	Open(ctx context.Context, b vault.Binding, envelope []byte) (vault.Secret, error)
}

// Providers resolves a workspace's integration: its provider configuration and, for
// OAuth, the client credentials.
type Providers interface {
	Provider(ctx context.Context, workspaceID, key string) (oauthflow.Provider, oauthflow.ClientCredentials, error)
}

// Metrics receives refresh outcomes (internal/metrics satisfies it): outcome is success,
// needs_reauth, unavailable or error; and the end of each sweep that ran to completion
// (the chart's "sweep stalled" alert watches it).
type Metrics interface {
	Refresh(provider, outcome string)
	SweepCompleted(at time.Time)
}

// Config tunes the refresher. Zero fields take the defaults.
type Config struct {
	// Schedule is the sweep's cron spec (AUTHPIPE_REFRESH_SCHEDULE); "" runs no sweep.
	Schedule string
	// Lead: refresh this long before expiry (AUTHPIPE_REFRESH_LEAD, default 10m).
	Lead time.Duration
	// Jitter: refresh up to this much earlier still, at random (default Lead/5).
	Jitter time.Duration
	// Workers bound the sweep's concurrent refreshes (default 16); PerProvider bounds
	// concurrent calls to one provider host, sweep and on-demand together (default 8).
	Workers, PerProvider int
	// Batch is how many due connections one claim takes (default 2×Workers).
	Batch int
	// LeaseTTL must exceed the provider call's timeout (default 2m).
	LeaseTTL time.Duration
	// BackoffBase and BackoffMax shape transient failures' backoff (default 10s, 30m).
	BackoffBase, BackoffMax time.Duration
	// MinInterval: a token refreshed this recently is served rather than refreshed again
	// for a min_validity it cannot meet (default 1s).
	MinInterval time.Duration
	// ForcedInterval: at most one forced refresh (POST .../refresh, a provider's 401 to a
	// forwarded call) per connection per interval, across replicas; callers inside it get
	// the last refresh's result (AUTHPIPE_FORCED_REFRESH_INTERVAL, default 30s).
	ForcedInterval time.Duration
	// WaitBusy bounds how long a request waits for another replica's refresh (default 15s).
	WaitBusy time.Duration
	// HealthInterval is how often API-key connections are checked (default 1h).
	HealthInterval time.Duration
	// WebhookSchedule is the webhook dispatcher's cron spec (default "@every 2s"; "-" none).
	WebhookSchedule string
	// ExpiringLead: webhook connection.expiring this long before a refresh token's end
	// (AUTHPIPE_REFRESH_TOKEN_EXPIRING_LEAD, default 7 days).
	ExpiringLead time.Duration
}

func (c *Config) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&c.Lead, 10*time.Minute)
	set(&c.Jitter, c.Lead/5)
	set(&c.LeaseTTL, 2*time.Minute)
	set(&c.BackoffBase, 10*time.Second)
	set(&c.BackoffMax, 30*time.Minute)
	set(&c.MinInterval, time.Second)
	set(&c.ForcedInterval, 30*time.Second)
	set(&c.WaitBusy, 15*time.Second)
	set(&c.HealthInterval, time.Hour)
	set(&c.ExpiringLead, 7*24*time.Hour)
	if c.Workers == 0 {
		c.Workers = 16
	}
	if c.PerProvider == 0 {
		c.PerProvider = 8
	}
	if c.Batch == 0 {
		c.Batch = 2 * c.Workers
	}
	if c.WebhookSchedule == "" {
		c.WebhookSchedule = "@every 2s"
	}
}

func (c Config) validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{"Lead": c.Lead, "LeaseTTL": c.LeaseTTL, "BackoffBase": c.BackoffBase,
		"BackoffMax": c.BackoffMax, "MinInterval": c.MinInterval, "ForcedInterval": c.ForcedInterval, "WaitBusy": c.WaitBusy, "HealthInterval": c.HealthInterval, "ExpiringLead": c.ExpiringLead} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", name))
		}
	}
	if c.Jitter < 0 || c.Jitter > c.Lead {
		errs = append(errs, errors.New("Jitter must be between 0 and Lead"))
	}
	if c.Workers < 1 || c.PerProvider < 1 || c.Batch < 1 {
		errs = append(errs, errors.New("Workers, PerProvider and Batch must be at least 1"))
	}
	if c.BackoffMax < c.BackoffBase {
		errs = append(errs, errors.New("BackoffMax must not be below BackoffBase"))
	}
	return errors.Join(errs...)
}

// Deps are the lower layers the refresher drives.
type Deps struct {
	Store     Store
	Creds     Sealer
	Providers Providers
	// HTTPClient makes every provider call: outbound.Client.TokenClient() (no redirects,
	// SSRF-guarded, timeouts). Never http.DefaultClient.
	HTTPClient *http.Client
}

// Option configures a Refresher.
type Option func(*Refresher)

// WithClock injects the clock.
func WithClock(now func() time.Time) Option { return func(r *Refresher) { r.now = now } }

// WithLogger sets the logger (default: discard). Nothing secret is ever logged.
func WithLogger(l *slog.Logger) Option { return func(r *Refresher) { r.log = l } }

// WithMetrics counts refresh outcomes.
func WithMetrics(m Metrics) Option { return func(r *Refresher) { r.metrics = m } }

// WithLatencyHook observes each provider call's duration (a histogram hook).
func WithLatencyHook(f func(provider string, d time.Duration)) Option {
	return func(r *Refresher) { r.latency = f }
}

// Refresher refreshes tokens on demand and on a schedule. Safe for concurrent use.
type Refresher struct {
	cfg       Config
	store     Store
	creds     Sealer
	audit     audit.Appender // records origin-check refusals: the store, when it is an Appender
	providers Providers
	http      *http.Client
	now       func() time.Time
	log       *slog.Logger
	metrics   Metrics
	latency   func(string, time.Duration)
	events    EventSink
	process   string // this process's part of every lease holder id
	flight    singleflight.Group
	limits    *hostLimits
	fail      failpoint
	sched     scheduler
	commits   committer

	providerClient func(oauthflow.Provider) (*http.Client, error) // provider_tls.go
}

// New validates cfg and builds a Refresher; Start runs its sweep.
func New(cfg Config, deps Deps, opts ...Option) (*Refresher, error) {
	cfg.defaults()
	testOverrides(&cfg)
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("refresher: %w", err)
	}
	if deps.Store == nil || deps.Creds == nil || deps.Providers == nil || deps.HTTPClient == nil {
		return nil, errors.New("refresher: Store, Creds, Providers and HTTPClient are required")
	}
	host, _ := os.Hostname()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	r := &Refresher{cfg: cfg, store: deps.Store, creds: deps.Creds, providers: deps.Providers, http: deps.HTTPClient,
		now: time.Now, log: slog.New(slog.DiscardHandler), process: host + "/" + hex.EncodeToString(b[:]),
		limits: newHostLimits(cfg.PerProvider), fail: loadFailpoint(), commits: committer{store: deps.Store, max: maxCommitters}}
	r.audit, _ = deps.Store.(audit.Appender)
	for _, o := range opts {
		o(r)
	}
	if r.now == nil || r.log == nil {
		return nil, errors.New("refresher: nil clock or logger")
	}
	r.log = r.log.With("component", "refresher")
	return r, nil
}

// Lead is the configured lead window.
func (r *Refresher) Lead() time.Duration { return r.cfg.Lead }

// NeedsRefresh reports whether an access token (an OAuth connection's, or a minted one:
// AuthMode.HasAccessToken) must be refreshed or minted before it is served: it is inside
// the lead window (now ≥ next_refresh_at − lead) or valid for less than minValidity, or a
// minted connection holds none yet. It reads only the row: the hot path calls it on every
// request.
func (r *Refresher) NeedsRefresh(c store.Connection, minValidity time.Duration) bool {
	if !oauthflow.AuthMode(c.AuthMode).HasAccessToken() {
		return false
	}
	if needsMint(c) {
		return true
	}
	now := r.now()
	if c.ExpiresAt != nil && !c.ExpiresAt.After(now.Add(minValidity)) {
		return true
	}
	return c.NextRefreshAt != nil && !now.Before(c.NextRefreshAt.Add(-r.cfg.Lead))
}

// deadline is the next_refresh_at of a token expiring at exp: exp minus a random jitter.
func (r *Refresher) deadline(exp *time.Time) *time.Time {
	if exp == nil {
		return nil
	}
	t := exp.Add(-jitter.Duration(r.cfg.Jitter + 1)).UTC() // jitter, not a secret
	return &t
}

// ForceRefresh refreshes the connection's tokens now (single-flight and leased like every
// refresh) and returns the new access token. The forwarding proxy calls it after a
// provider's 401.
func (r *Refresher) ForceRefresh(ctx context.Context, workspaceID, connectionID string) (vault.Secret, error) {
	t, err := r.token(ctx, workspaceID, connectionID, 0, true)
	return t.Secret, err
}

// Refresh refreshes the connection now and returns its metadata. Unlike Tokens.Credential, a failed
// refresh is reported (ErrUnavailable) even while the current token is valid.
func (r *Refresher) Refresh(ctx context.Context, workspaceID, connectionID string) (store.Connection, error) {
	res, err := r.shared(ctx, workspaceID, connectionID, 0, true)
	if err != nil {
		return store.Connection{}, err
	}
	if res.err != nil {
		return res.row.Connection, res.err
	}
	return res.row.Connection, nil
}

// token refreshes an OAuth connection's access token (Tokens.Credential decided it must)
// and returns it opened. A concurrent request for the same connection, on this replica or
// another, shares the one refresh. When the refresh fails transiently the current token is
// served while it is still valid.
func (r *Refresher) token(ctx context.Context, workspaceID, connectionID string, minValidity time.Duration, force bool) (Credential, error) {
	res, err := r.shared(ctx, workspaceID, connectionID, minValidity, force)
	if err != nil {
		return Credential{}, err
	}
	if res.err != nil {
		// A transient failure: serve the current token while it is still valid.
		if !errors.Is(res.err, ErrUnavailable) || !stillValid(res.row.Connection, r.now()) || res.row.Credential == nil {
			return Credential{}, res.err
		}
		res.fresh = nil
	}
	if res.fresh == nil {
		return openCredential(ctx, r.creds, res.row)
	}
	return Credential{Secret: res.fresh.AccessToken, Kind: oauthflow.AuthMode(res.row.AuthMode), TokenType: tokenType(res.fresh.TokenType),
		ExpiresAt: res.row.ExpiresAt, Scopes: []string(res.row.Scopes), Conn: res.row.Connection}, nil
}

// result is one refresh flight's outcome: the row as committed (or as found), the fresh
// tokens when this flight refreshed, or an error of this package (err) that still comes
// with the row, so that a caller can serve the current token.
type result struct {
	row   store.ConnectionCredential
	fresh *oauthflow.Token
	err   error
}

// shared runs one flight per (connection, force, minValidity) in this process; the flight
// runs detached from any one caller's cancellation (a provider that has answered must be
// committed), each caller stops waiting at its own deadline.
func (r *Refresher) shared(ctx context.Context, workspaceID, connectionID string, minValidity time.Duration, force bool) (result, error) {
	key := fmt.Sprintf("%s|%s|%t|%d", workspaceID, connectionID, force, minValidity)
	ch := r.flight.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.LeaseTTL+r.cfg.WaitBusy)
		defer cancel()
		return r.onDemand(fctx, workspaceID, connectionID, minValidity, force)
	})
	select {
	case <-ctx.Done():
		return result{}, unavailableOnDeadline(ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return result{}, unavailableOnDeadline(res.Err)
		}
		return res.Val.(result), nil
	}
}

// unavailableOnDeadline makes a deadline that ran out while a refresh was awaited an
// ErrUnavailable (503 refresh_unavailable), keeping the deadline in the chain.
func unavailableOnDeadline(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// audit data helpers -------------------------------------------------------------------

// Audit event data keys. "webhook" names the webhook the event triggers (webhooks.go).
func eventData(kv ...string) string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			m[kv[i]] = kv[i+1]
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

package proxy

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/inbound"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/health"
	"github.com/authpipe/authpipe-proxy/internal/metrics"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/providers"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Config is what the HTTP layer needs to know of the deployment.
type Config struct {
	// PublicURL is the URL end users' browsers reach (no trailing slash).
	PublicURL string
	// Dev relaxes URL rules for local development (plain http on loopback).
	Dev bool
	// OutboundAllowCIDRs are the private ranges provider URLs may point at.
	OutboundAllowCIDRs []netip.Prefix
	// Edge configures trusted proxies, rate limits and DPoP (edge.go).
	Edge EdgeConfig
	// SeparateOps serves /healthz, /readyz and /metrics on OpsHandler only (their own
	// listener, AUTHPIPE_OPS_LISTEN_ADDR); otherwise Handler serves them too.
	SeparateOps bool
	// AccessLog is the access log's mode: AccessLogSummary (also ""), AccessLogAll or
	// AccessLogOff (accesslog.go, AUTHPIPE_ACCESS_LOG).
	AccessLog string
}

// Deps are the lower layers the server drives.
type Deps struct {
	// Admin authenticates API keys and holds the proxy's own keys and the administration
	// the admin routes call (handlers_admin.go).
	Admin   *admin.Service
	Store   *store.Store
	Creds   *vault.Keyring // purpose credentials
	Secrets *vault.Keyring // purpose client_secrets
	Audit   *audit.Batcher // token.read events
	// Providers is the workspaces' provider configurations and the catalog.
	Providers *providers.Service
	// Tokens serves credentials, refreshing OAuth tokens first when they must be
	// (refresher.Tokens, handlers_refresh.go); nil: a refresher.Tokens without a Refresher,
	// which serves stored tokens until they expire.
	Tokens TokenService
	Events EventSink // metadata for the control plane (events.go); nil = standalone
	// Revocations disconnects connections and revokes their tokens at the providers
	// (handlers_lifecycle.go); nil fails disconnects, erasures and workspace deletions.
	Revocations Revocations
	// Incidents rotates the tokens an incident exposed (handlers_incident.go); nil answers
	// POST /v1/incidents/rotate with 503.
	Incidents IncidentRotator
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithClock injects the clock.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// Server is the HTTP API.
type Server struct {
	cfg       Config
	store     *store.Store
	creds     *vault.Keyring
	secret    *vault.Keyring
	audit     *audit.Batcher
	providers *providers.Service
	admin     *admin.Service
	log       *slog.Logger
	now       func() time.Time
	ready     atomic.Bool
	health    *health.Checker  // handlers_health.go
	engine    *gin.Engine      // routes.go: the API
	ops       *gin.Engine      // routes.go: /healthz, /readyz, /metrics
	metrics   *metrics.Metrics // metrics.go

	edge      *edge               // edge.go: client address, rate limits, DPoP
	fwd       *forwarder          // forward.go
	outbound  *outbound.Client    // WithOutbound
	refresher tokenRefresher      // WithTokenRefresher
	tokens    TokenService        // Deps.Tokens
	oauth     providerClients     // provider_client.go: the connect flows' provider client
	connect   *connectAPI         // handlers_connect.go
	importer  *oauthflow.Importer // handlers_connections.go: POST /v1/connections with oauth2
	machines  *oauthflow.Machines // handlers_connections.go: POST /v1/connections of a machine mode
	life      *lifecycleAPI       // handlers_lifecycle.go
	inbound   inboundAPI          // handlers_inbound.go
	incidents IncidentRotator     // handlers_incident.go

	clientCertBinding bool       // clientcert.go: WithClientCertBinding
	fwdTLS            forwardTLS // forward_tls.go: WithForwardClients

	events EventSink // events.go: metadata for the control plane
}

// New builds the server and its routes.
func New(cfg Config, deps Deps, opts ...Option) (*Server, error) {
	if deps.Admin == nil || deps.Store == nil || deps.Creds == nil || deps.Secrets == nil || deps.Audit == nil || deps.Providers == nil {
		return nil, errors.New("proxy: Admin, Store, Creds, Secrets, Audit and Providers are required")
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("proxy: PublicURL is required")
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	s := &Server{cfg: cfg, admin: deps.Admin, store: deps.Store, creds: deps.Creds, secret: deps.Secrets, audit: deps.Audit, providers: deps.Providers,
		log: slog.New(slog.DiscardHandler), now: time.Now, health: readinessChecks(deps.Store, deps.Creds, deps.Secrets)}
	for _, o := range opts {
		o(s)
	}
	if s.events = deps.Events; s.events == nil {
		s.events = noEvents{}
	}
	if s.tokens = deps.Tokens; s.tokens == nil {
		s.tokens = refresher.NewTokens(deps.Store, deps.Creds, nil, s.now)
	}
	if s.refresher == nil {
		s.refresher = s.tokens
	}
	s.oauth.allow, s.oauth.log = cfg.OutboundAllowCIDRs, s.log
	flows, err := oauthflow.NewFlows(oauthflow.FlowDeps{Store: deps.Store, Creds: deps.Creds, ClientFor: s.oauth.tokenClient,
		Providers: deps.Providers,
		Keys:      &flowKeys{state: deps.Admin.StateKeys(), hashKeys: deps.Admin.APIKeyHashKeys(), now: s.now}},
		oauthflow.WithFlowLogger(s.log), oauthflow.WithFlowClock(s.now))
	if err != nil {
		return nil, err
	}
	s.connect = &connectAPI{flows: flows, publicURL: cfg.PublicURL, events: s.events}
	if s.importer, err = oauthflow.NewImporter(oauthflow.ImportDeps{Store: deps.Store, Providers: deps.Providers,
		Creds: deps.Creds, ValidEndUser: admin.ValidEndUserID}, s.now, s.log); err != nil {
		return nil, err
	}
	if s.machines, err = oauthflow.NewMachines(oauthflow.MachineDeps{Store: deps.Store, Providers: deps.Providers,
		Creds: deps.Creds, ClientFor: s.oauth.tokenClient, Now: s.now}); err != nil {
		return nil, err
	}
	s.incidents = deps.Incidents
	s.life = &lifecycleAPI{revocations: deps.Revocations, admin: deps.Admin, events: s.events,
		checkpointKeys: deps.Admin.CheckpointKeys(), log: s.log}
	if err := s.initMetrics(); err != nil {
		return nil, err
	}
	webhooks, err := inbound.New(deps.Store, deps.Creds, deps.Providers, s.now)
	if err != nil {
		return nil, err
	}
	s.inbound = inboundAPI{svc: webhooks, publicURL: cfg.PublicURL, metrics: s.metrics}
	if err := s.initEdge(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// Handler returns the http.Handler of the API (with the operations endpoints unless
// Config.SeparateOps).
func (s *Server) Handler() http.Handler { return s.engine }

// OpsHandler returns the http.Handler of the operations endpoints alone: /healthz,
// /readyz and /metrics.
func (s *Server) OpsHandler() http.Handler { return s.ops }

// SetReady marks start-up work (migrations, bootstrap) done; /readyz reports it.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// authenticate resolves the bearer key to a principal. Missing, malformed, unknown,
// revoked and wrong-workspace keys all get the same 401 through the same steps.
func (s *Server) authenticate(c *gin.Context) {
	raw, ok := presentedKey(c.GetHeader("Authorization")) // Bearer, or DPoP for bound keys
	if !ok || !admin.ValidKeyFormat(raw) {
		fail(c, problem.ErrUnauthorized)
		return
	}
	p, err := s.admin.Authenticate(c.Request.Context(), vault.NewSecret(raw))
	if err != nil {
		fail(c, err)
		return
	}
	r := requestOf(c)
	r.principal = p // not yet authed: a refused read of this key is accounted in its workspace (reads.go)
	if ws := c.GetHeader("X-Authpipe-Workspace"); ws != "" && ws != p.WorkspaceID {
		fail(c, problem.ErrUnauthorized)
		return
	}
	if err := s.checkClientCert(c.Request, p); err != nil { // mTLS binding (clientcert.go)
		fail(c, err)
		return
	}
	r.authed = true
	c.Next()
}

func bearer(h string) (string, bool) {
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

// require makes a route need a scope.
func require(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, ok := principalOf(c)
		if !ok {
			fail(c, problem.ErrUnauthorized)
			return
		}
		if !p.Has(scope) {
			fail(c, problem.ErrForbidden.WithDetail("this key lacks the scope "+scope))
			return
		}
		c.Next()
	}
}

// requireAny makes a route need one of several scopes.
func requireAny(scopes ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, ok := principalOf(c)
		if !ok {
			fail(c, problem.ErrUnauthorized)
			return
		}
		for _, sc := range scopes {
			if p.Has(sc) {
				c.Next()
				return
			}
		}
		fail(c, problem.ErrForbidden.WithDetail("this key lacks the scopes "+strings.Join(scopes, " or ")))
	}
}

func principalOf(c *gin.Context) (admin.Principal, bool) {
	r := requestOf(c)
	return r.principal, r.authed
}

func principal(c *gin.Context) admin.Principal { p, _ := principalOf(c); return p }

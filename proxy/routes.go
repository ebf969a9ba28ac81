package proxy

import (
	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// routes is the whole HTTP surface (API.md): the API on s.engine, and /healthz, /readyz
// and /metrics on s.ops and, unless Config.SeparateOps, on s.engine too. docs/openapi.yaml
// documents each of these routes; TestOpenAPICoversRoutes keeps the two in step.
func (s *Server) routes() {
	s.ops = s.newEngine()
	s.opsRoutes(s.ops)
	r := s.newEngine()
	s.engine = r
	if !s.cfg.SeparateOps {
		s.opsRoutes(r)
	}

	api := r.Group("/v1", s.limitAuthFailures, s.authenticate, s.checkDPoP, s.limitByKey)
	providersAPI{svc: s.providers, events: s.events}.routes(api) // handlers_providers.go: /v1/catalog, /v1/providers

	api.POST("/connections", require(admin.ScopeConnectionsWrite), s.handleCreateConnection)
	api.GET("/connections", requireAny(admin.ScopeTokensRead, admin.ScopeConnectionsWrite), s.handleListConnections)
	api.GET("/connections/:id", requireAny(admin.ScopeTokensRead, admin.ScopeConnectionsWrite), s.handleGetConnection)
	// The read routes count refused reads in the audit chain, 401s of a known key included,
	// so their accounting runs before authentication (reads.go).
	authed := []gin.HandlerFunc{s.limitAuthFailures, s.authenticate, s.checkDPoP, s.limitByKey}
	tokenAPI := r.Group("/v1", append([]gin.HandlerFunc{accountRefused(s.audit, audit.TokenRead, "id", s.now, s.log)}, authed...)...)
	tokenAPI.GET("/connections/:id/token", require(admin.ScopeTokensRead), s.handleToken)
	api.DELETE("/connections/:id", require(admin.ScopeConnectionsWrite), s.life.handleDisconnect)
	api.POST("/connections/:id/refresh", require(admin.ScopeConnectionsWrite), s.handleRefresh)

	fwdAPI := r.Group("/v1", append([]gin.HandlerFunc{accountRefused(s.audit, forwardEventType, "connection_id", s.now, s.log)}, authed...)...)
	for _, m := range forwardMethods { // not CONNECT or TRACE
		fwdAPI.Handle(m, "/proxy/:connection_id/*path", require(admin.ScopeTokensRead), s.handleForward)
	}

	// API keys, workspaces, proxy keys, webhooks (handlers_admin.go), KEKs
	// (handlers_keks.go), the audit chain (handlers_audit.go).
	adminAPI{svc: s.admin, checkURL: s.providers.URLPolicy().Check}.routes(api)
	s.life.routes(api) // handlers_lifecycle.go: erasure, export, workspace deletion, checkpoint keys
	kekAPI{keks: s.admin.KEKs()}.routes(api)
	auditAPI{svc: s.admin, log: s.log, metrics: s.metrics}.routes(api)
	deploymentAPI{store: s.store}.routes(api)                     // handlers_deployment.go: GET /v1/deployment
	s.inbound.routes(api)                                         // handlers_inbound.go: provider webhook signing secrets
	incidentAPI{svc: s.admin, incidents: s.incidents}.routes(api) // handlers_incident.go: freeze, incident rotation

	// The OAuth connect flow (handlers_connect.go). The browser's two routes carry no API
	// key: the session id and the state (with the flow cookie) are their capabilities.
	api.POST("/connect/sessions", require(admin.ScopeConnectionsWrite), s.connect.handleCreateSession)
	api.POST("/connections/:id/reconnect", require(admin.ScopeConnectionsWrite), s.connect.handleReconnect)
	// per client address, before anything else (ratelimit.go); errors as pages for browsers (browser_pages.go)
	pub := r.Group("/v1", browserRoute, s.limitByIP)
	pub.GET("/connect/:session", s.connect.handlePage)
	pub.POST("/connect/:session", s.connect.handleStart)
	pub.GET("/oauth/callback", s.connect.handleCallback)
	s.inbound.publicRoutes(pub) // POST /v1/inbound/{provider}/{connection_id}: providers' webhooks
}

// newEngine is a gin engine with the middleware every route has.
func (s *Server) newEngine() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RemoveExtraSlash = false
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	// Routes match the path as sent, each parameter then percent-decoded: an encoded "/" in
	// an id (an end user "tenant/42" is /v1/end-users/tenant%2F42) stays inside its segment.
	r.UseRawPath = true
	r.UnescapePathValues = true
	s.configureEngine(r) // trusted proxies (edge.go)
	// edgeMiddleware: client address via trusted proxies, ?access_token= refused (and an
	// access_token form parameter in the body, except on /v1/proxy), body limit (1 MiB;
	// 32 MiB for /v1/proxy).
	r.Use(s.observeRequest) // metrics.go: first, so it sees every final status
	r.Use(traceRequest)     // tracing.go: the server span, around the access log (trace ids in its line)
	r.Use(recovery(s.log), stampRequest, accessLog(s.log, s.cfg.AccessLog), errorMiddleware(s.log), s.edgeMiddleware)
	r.NoRoute(func(c *gin.Context) { fail(c, problem.ErrNotFound) })
	r.NoMethod(func(c *gin.Context) { fail(c, problem.ErrMethodNotAllowed) })
	return r
}

// opsRoutes are the operations endpoints: no API key, restrict them by network policy (or
// serve them on their own listener, AUTHPIPE_OPS_LISTEN_ADDR).
func (s *Server) opsRoutes(r *gin.Engine) {
	r.GET("/healthz", s.handleHealthz)
	r.GET("/readyz", s.handleReadyz)
	r.GET("/metrics", s.handleMetrics)
}

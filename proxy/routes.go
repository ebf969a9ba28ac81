package proxy

import (
	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// routes is the whole HTTP surface (API.md). docs/openapi.yaml documents each of these
// routes; TestOpenAPICoversRoutes keeps the two in step.
func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RemoveExtraSlash = false
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	s.configureEngine(r) // trusted proxies (edge.go)
	// edgeMiddleware: client address via trusted proxies, ?access_token= refused (and an
	// access_token form parameter in the body, except on /v1/proxy), body limit (1 MiB;
	// 32 MiB for /v1/proxy).
	r.Use(s.observeRequest) // metrics.go: first, so it sees every final status
	r.Use(recovery(s.log), stampRequest, accessLog(s.log), errorMiddleware(s.log), s.edgeMiddleware)
	r.NoRoute(func(c *gin.Context) { fail(c, problem.ErrNotFound) })
	r.NoMethod(func(c *gin.Context) { fail(c, problem.ErrMethodNotAllowed) })

	r.GET("/healthz", s.handleHealthz)
	r.GET("/readyz", s.handleReadyz)
	r.GET("/metrics", s.handleMetrics) // no API key: restrict by network policy

	api := r.Group("/v1", s.limitAuthFailures, s.authenticate, s.checkDPoP, s.limitByKey)
	api.GET("/catalog", s.handleCatalog)

	api.GET("/providers", s.handleListProviders)
	api.GET("/providers/:key", s.handleGetProvider)
	api.PUT("/providers/:key", require(ScopeProvidersWrite), s.handlePutProvider)
	api.DELETE("/providers/:key", require(ScopeProvidersWrite), s.handleDeleteProvider)

	api.POST("/connections", require(ScopeConnectionsWrite), s.handleCreateConnection)
	api.GET("/connections", requireAny(ScopeTokensRead, ScopeConnectionsWrite), s.handleListConnections)
	api.GET("/connections/:id", requireAny(ScopeTokensRead, ScopeConnectionsWrite), s.handleGetConnection)
	api.GET("/connections/:id/token", require(ScopeTokensRead), auditRefusedRead(s.audit, s.now, s.log), s.handleToken)
	api.DELETE("/connections/:id", require(ScopeConnectionsWrite), s.life.handleDisconnect)
	api.POST("/connections/:id/refresh", require(ScopeConnectionsWrite), s.handleRefresh)
	api.PUT("/webhooks", require(ScopeAdmin), s.handlePutWebhook)
	api.DELETE("/webhooks", require(ScopeAdmin), s.handleDeleteWebhook)

	for _, m := range forwardMethods { // not CONNECT or TRACE
		api.Handle(m, "/proxy/:connection_id/*path", require(ScopeTokensRead), s.handleForward)
	}

	api.POST("/api-keys", require(ScopeAdmin), s.handleCreateAPIKey)
	api.GET("/api-keys", require(ScopeAdmin), s.handleListAPIKeys)
	api.DELETE("/api-keys/:id", require(ScopeAdmin), s.handleRevokeAPIKey)

	api.POST("/workspaces", require(ScopeWorkspacesWrite), s.handleCreateWorkspace)
	api.GET("/workspaces", require(ScopeWorkspacesWrite), s.handleListWorkspaces)
	api.PATCH("/workspaces/:id", require(ScopeWorkspacesWrite), s.handlePatchWorkspace)
	s.life.routes(api) // handlers_lifecycle.go: erasure, export, workspace deletion, checkpoint keys

	keys := newKeyRotation(s)
	api.POST("/keys/rotate", require(ScopeWorkspacesWrite), keys.handleRotateKeys)
	api.GET("/keys", require(ScopeWorkspacesWrite), keys.handleKeys)
	api.POST("/proxy-keys/rotate", require(ScopeWorkspacesWrite), s.handleRotateProxyKey) // handlers_proxykeys.go

	api.GET("/audit", require(ScopeAuditRead), s.handleListAudit)
	api.GET("/audit/verify", require(ScopeAuditRead), s.handleVerifyAudit)

	// The OAuth connect flow (handlers_connect.go). The browser's two routes carry no API
	// key: the session id and the state (with the flow cookie) are their capabilities.
	api.POST("/connect/sessions", require(ScopeConnectionsWrite), s.connect.handleCreateSession)
	api.POST("/connections/:id/reconnect", require(ScopeConnectionsWrite), s.connect.handleReconnect)
	pub := r.Group("/v1", s.limitByIP) // per client address, before anything else (ratelimit.go)
	pub.GET("/connect/:session", s.connect.handleStart)
	pub.GET("/oauth/callback", s.connect.handleCallback)
	return r
}

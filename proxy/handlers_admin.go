package proxy

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/dpop"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/internal/webhooksig"
	"github.com/authpipe/authpipe-proxy/refresher"
)

// adminAPI serves the administration routes (API.md "Administration"): API keys,
// workspaces, the proxy's own keys and the webhook endpoint. Each handler parses,
// calls admin and renders.
type adminAPI struct {
	svc *admin.Service
	// checkURL is the outbound URL policy provider URLs follow; webhook URLs follow it too.
	checkURL func(raw string) error
}

func (a adminAPI) routes(api *gin.RouterGroup) {
	api.POST("/api-keys", require(admin.ScopeAdmin), a.handleCreateAPIKey)
	api.GET("/api-keys", require(admin.ScopeAdmin), a.handleListAPIKeys)
	api.DELETE("/api-keys/:id", require(admin.ScopeAdmin), a.handleRevokeAPIKey)

	api.POST("/workspaces", require(admin.ScopeWorkspacesWrite), a.handleCreateWorkspace)
	api.GET("/workspaces", require(admin.ScopeWorkspacesWrite), a.handleListWorkspaces)
	api.PATCH("/workspaces/:id", require(admin.ScopeWorkspacesWrite), a.handlePatchWorkspace)

	api.POST("/proxy-keys/rotate", require(admin.ScopeWorkspacesWrite), a.handleRotateProxyKey)

	api.PUT("/webhooks", require(admin.ScopeAdmin), a.handlePutWebhook)
	api.DELETE("/webhooks", require(admin.ScopeAdmin), a.handleDeleteWebhook)
}

// ---- API keys ----

func (a adminAPI) handleCreateAPIKey(c *gin.Context) {
	var req struct {
		Name    string   `json:"name"`
		Scopes  []string `json:"scopes"`
		DPoPJKT string   `json:"dpop_jkt"` // RFC 9449: bind the key to this JWK thumbprint
	}
	if !bindJSON(c, &req) {
		return
	}
	p := principal(c)
	if err := admin.ValidKeyName(req.Name); err != nil {
		fail(c, err)
		return
	}
	if err := admin.ValidScopes(req.Scopes, p.Has(admin.ScopeWorkspacesWrite)); err != nil {
		fail(c, err)
		return
	}
	if req.DPoPJKT != "" && !dpop.ValidJKT(req.DPoPJKT) {
		fail(c, problem.ErrInvalidRequest.WithField("dpop_jkt", "an RFC 7638 SHA-256 JWK thumbprint, base64url"))
		return
	}
	k, err := a.svc.CreateAPIKey(c.Request.Context(), admin.KeyRequest{WorkspaceID: p.WorkspaceID, Name: req.Name,
		Scopes: req.Scopes, DPoPJKT: req.DPoPJKT, Actor: p.KeyID})
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, k)
}

func (a adminAPI) handleListAPIKeys(c *gin.Context) {
	keys, err := a.svc.ListAPIKeys(c.Request.Context(), principal(c).WorkspaceID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"api_keys": keys})
}

func (a adminAPI) handleRevokeAPIKey(c *gin.Context) {
	p := principal(c)
	if err := a.svc.RevokeAPIKey(c.Request.Context(), p.WorkspaceID, c.Param("id"), p.KeyID); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// ---- Workspaces ----

func (a adminAPI) handleCreateWorkspace(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
	}
	if !bindJSON(c, &req) {
		return
	}
	ws, err := a.svc.CreateWorkspace(c.Request.Context(), req.Name, principal(c).KeyID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, ws)
}

func (a adminAPI) handleListWorkspaces(c *gin.Context) {
	list, err := a.svc.ListWorkspaces(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"workspaces": list})
}

// handlePatchWorkspace is PATCH /v1/workspaces/{id}: today one setting, the workspace's
// own audit retention ({"audit_retention":"720h"}, or null for the deployment's).
func (a adminAPI) handlePatchWorkspace(c *gin.Context) {
	var req struct {
		AuditRetention *string `json:"audit_retention"`
	}
	if !bindJSON(c, &req) {
		return
	}
	var d *time.Duration
	if req.AuditRetention != nil {
		v, err := time.ParseDuration(*req.AuditRetention)
		if err != nil {
			fail(c, admin.ErrInvalidRetention)
			return
		}
		d = &v
	}
	ws, err := a.svc.SetAuditRetention(c.Request.Context(), c.Param("id"), d, principal(c).KeyID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, ws)
}

// ---- The proxy's own keys ----

// handleRotateProxyKey is POST /v1/proxy-keys/rotate {"purpose": …} (workspaces:write).
func (a adminAPI) handleRotateProxyKey(c *gin.Context) {
	var req struct {
		Purpose string `json:"purpose"`
	}
	if !bindJSON(c, &req) {
		return
	}
	p := principal(c)
	if req.Purpose == admin.PurposeWebhook {
		r, err := a.svc.RotateWebhookSecret(c.Request.Context(), p.WorkspaceID, p.KeyID)
		if err != nil {
			fail(c, err)
			return
		}
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusOK, gin.H{"purpose": admin.PurposeWebhook, "kid": r.KID, "verify_only": []string{r.PreviousKID},
			"secret": r.Secret.Reveal(), "retire_after": r.RetireAfter})
		return
	}
	r, err := a.svc.RotateProxyKey(c.Request.Context(), req.Purpose, p.KeyID)
	if errors.Is(err, admin.ErrUnknownPurpose) {
		err = problem.ErrInvalidRequest.WithField("purpose", "one of apikey-hash, state, webhook, checkpoint")
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

// ---- Webhooks ----

// handlePutWebhook is PUT /v1/webhooks (scope admin): set the workspace's webhook URL. A
// new signing secret is made each time and shown only in this response.
func (a adminAPI) handlePutWebhook(c *gin.Context) {
	var req struct {
		URL string `json:"url"`
	}
	if !bindJSON(c, &req) {
		return
	}
	if err := a.checkURL(req.URL); err != nil {
		fail(c, problem.ErrUnsafeURL.WithField("url", err.Error()))
		return
	}
	p := principal(c)
	secret, err := a.svc.PutWebhook(c.Request.Context(), p.WorkspaceID, req.URL, p.KeyID)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"url": req.URL, "secret": secret.Reveal(), "signature_header": webhooksig.SignatureHeader,
		"events": []string{refresher.EventCreated, refresher.EventDisconnected, refresher.EventNeedsReauth, refresher.EventRefreshFailed,
			refresher.EventExpiring, refresher.EventProviderWebhook, refresher.EventSecurityAnomaly}})
}

// handleDeleteWebhook is DELETE /v1/webhooks (scope admin).
func (a adminAPI) handleDeleteWebhook(c *gin.Context) {
	p := principal(c)
	if err := a.svc.DeleteWebhook(c.Request.Context(), p.WorkspaceID, p.KeyID); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"deleted": true})
}

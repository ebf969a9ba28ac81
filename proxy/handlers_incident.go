package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/refresher"
)

// IncidentRotator rotates the tokens an incident exposed (refresher.Incidents).
type IncidentRotator interface {
	Rotate(ctx context.Context, req refresher.IncidentRequest) (refresher.IncidentResult, error)
}

var _ IncidentRotator = (*refresher.Incidents)(nil)

// incidentAPI serves incident response (API.md "Incident response", docs/incident-response.md):
// freezing a workspace and rotating exposed tokens. Each handler parses, authorizes, calls
// admin and renders.
type incidentAPI struct {
	svc       *admin.Service
	incidents IncidentRotator // nil: rotation answers 503
}

func (a incidentAPI) routes(api *gin.RouterGroup) {
	// An admin key freezes its own workspace; a workspaces:write key any workspace.
	api.POST("/workspaces/:id/freeze", requireAny(admin.ScopeAdmin, admin.ScopeWorkspacesWrite), a.handleFreeze(true))
	api.POST("/workspaces/:id/unfreeze", requireAny(admin.ScopeAdmin, admin.ScopeWorkspacesWrite), a.handleFreeze(false))
	api.POST("/incidents/rotate", require(admin.ScopeAdmin), a.handleRotate)
}

// handleRotate is POST /v1/incidents/rotate: {"api_key_id"|"provider"|"end_user_id"|
// "workspace":true, "since":"24h", "dry_run":bool}, or {"incident_id"} to resume one. It
// runs to the end (a large incident is better run with the CLI, which shows progress).
func (a incidentAPI) handleRotate(c *gin.Context) {
	var req struct {
		IncidentID string `json:"incident_id"`
		APIKeyID   string `json:"api_key_id"`
		Provider   string `json:"provider"`
		EndUserID  string `json:"end_user_id"`
		Workspace  bool   `json:"workspace"`
		Since      string `json:"since"`
		DryRun     bool   `json:"dry_run"`
	}
	if !bindJSON(c, &req) {
		return
	}
	var since time.Duration
	if req.Since != "" {
		d, err := time.ParseDuration(req.Since)
		if err != nil {
			fail(c, refresher.ErrIncidentSince)
			return
		}
		since = d
	}
	if a.incidents == nil {
		fail(c, problem.ErrRefreshUnavailable.WithDetail("no incident rotation is configured"))
		return
	}
	p := principal(c)
	res, err := a.incidents.Rotate(c.Request.Context(), refresher.IncidentRequest{WorkspaceID: p.WorkspaceID,
		IncidentID: req.IncidentID, APIKeyID: req.APIKeyID, Provider: req.Provider, EndUserID: req.EndUserID,
		Workspace: req.Workspace, Since: since, DryRun: req.DryRun, Actor: p.KeyID})
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}

// handleFreeze is POST /v1/workspaces/{id}/freeze and /unfreeze.
func (a incidentAPI) handleFreeze(frozen bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, id := principal(c), c.Param("id")
		if id != p.WorkspaceID && !p.Has(admin.ScopeWorkspacesWrite) {
			fail(c, problem.ErrForbidden.WithDetail("an admin key freezes its own workspace; another needs the scope "+
				admin.ScopeWorkspacesWrite))
			return
		}
		ws, err := a.svc.FreezeWorkspace(c.Request.Context(), id, frozen, p.KeyID)
		if err != nil {
			fail(c, err)
			return
		}
		c.JSON(http.StatusOK, ws)
	}
}

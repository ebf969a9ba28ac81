package proxy

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// incidentAPI serves incident response (API.md "Incident response", docs/incident-response.md):
// freezing a workspace and rotating exposed tokens. Each handler parses, authorizes, calls
// admin and renders.
type incidentAPI struct {
	svc *admin.Service
}

func (a incidentAPI) routes(api *gin.RouterGroup) {
	// An admin key freezes its own workspace; a workspaces:write key any workspace.
	api.POST("/workspaces/:id/freeze", requireAny(admin.ScopeAdmin, admin.ScopeWorkspacesWrite), a.handleFreeze(true))
	api.POST("/workspaces/:id/unfreeze", requireAny(admin.ScopeAdmin, admin.ScopeWorkspacesWrite), a.handleFreeze(false))
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

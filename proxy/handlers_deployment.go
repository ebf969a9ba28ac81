package proxy

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/vault/store"
)

// deploymentAPI is GET /v1/deployment: this deployment's id, the audience the control
// plane signs configuration documents for (docs/control-plane.md). Any valid API key may
// read it: it is an identifier, not a secret (it travels in every heartbeat), and knowing
// it grants nothing, since a document must also carry the pinned key's signature.
type deploymentAPI struct{ store *store.Store }

func (a deploymentAPI) routes(api *gin.RouterGroup) { api.GET("/deployment", a.handleGet) }

func (a deploymentAPI) handleGet(c *gin.Context) {
	id, err := a.store.DeploymentID(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"deployment_id": id})
}

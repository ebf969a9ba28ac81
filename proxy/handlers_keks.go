package proxy

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/vault"
)

// kekAPI serves the KEKs (API.md "Administration": POST /v1/keys/rotate, GET /v1/keys):
// the rotation itself is admin.KEKRotation.
type kekAPI struct {
	keks *admin.KEKRotation
}

func (k kekAPI) routes(api *gin.RouterGroup) {
	api.POST("/keys/rotate", require(admin.ScopeWorkspacesWrite), k.handleRotateKeys)
	api.GET("/keys", require(admin.ScopeWorkspacesWrite), k.handleKeys)
}

// handleRotateKeys starts re-wrapping every DEK of every workspace, both purposes, under
// the current KEKs, in the background: 202 with the state. While a rotation runs here, a
// second call starts nothing and returns the running state.
func (k kekAPI) handleRotateKeys(c *gin.Context) {
	started := k.keks.Start(principal(c).KeyID)
	v, err := k.keks.Status(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	if started && v.Rotation.State == string(vault.RotationIdle) {
		// The run may not have saved its first progress yet: it is running all the same.
		v.Rotation.State = string(vault.RotationRunning)
	}
	c.JSON(http.StatusAccepted, v)
}

// handleKeys reports the current KEKs, the deployment's DEKs by KEK id and the rotation.
func (k kekAPI) handleKeys(c *gin.Context) {
	v, err := k.keks.Status(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

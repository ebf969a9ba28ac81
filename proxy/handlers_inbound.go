package proxy

import (
	"errors"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/inbound"
	"github.com/authpipe/authpipe-proxy/internal/metrics"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/internal/webhookverify"
	"github.com/authpipe/authpipe-proxy/vault"
)

// inboundAPI is the provider webhooks' HTTP surface (package inbound): the public
// reception route and the management of the webhook signing secrets.
type inboundAPI struct {
	svc       *inbound.Service
	publicURL string
	metrics   *metrics.Metrics
}

// publicRoutes go on the per-IP limited group: no API key, the provider calls them.
func (a inboundAPI) publicRoutes(pub gin.IRoutes) {
	pub.POST("/inbound/:provider/:connection_id", a.handleReceive)
}

func (a inboundAPI) routes(api gin.IRoutes) {
	conn, prov := require(admin.ScopeConnectionsWrite), require(admin.ScopeProvidersWrite)
	api.GET("/connections/:id/webhook-secret", conn, a.secretHandler(false, a.getSecret))
	api.PUT("/connections/:id/webhook-secret", conn, a.handlePutSecret(false))
	api.DELETE("/connections/:id/webhook-secret", conn, a.handleDeleteSecret(false, false))
	api.DELETE("/connections/:id/webhook-secret/previous", conn, a.handleDeleteSecret(false, true))
	api.GET("/providers/:key/webhook-secret", prov, a.secretHandler(true, a.getSecret))
	api.PUT("/providers/:key/webhook-secret", prov, a.handlePutSecret(true))
	api.DELETE("/providers/:key/webhook-secret", prov, a.handleDeleteSecret(true, false))
	api.DELETE("/providers/:key/webhook-secret/previous", prov, a.handleDeleteSecret(true, true))
}

// handleReceive: POST /v1/inbound/{provider}/{connection_id}. The body is read whole
// (the edge's 1 MiB limit answers 413 beyond it) and verified as received.
func (a inboundAPI) handleReceive(c *gin.Context) {
	provider := c.Param("provider")
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		if isTooLarge(err) {
			a.metrics.InboundWebhook(provider, webhookverify.ReasonTooLarge)
			fail(c, problem.ErrPayloadTooLarge)
		} else {
			fail(c, problem.ErrInvalidRequest.WithDetail("could not read the request body"))
		}
		return
	}
	err = a.svc.Receive(c.Request.Context(), provider, c.Param("connection_id"), webhookverify.Request{
		Method: c.Request.Method, URL: a.publicURL + c.Request.URL.RequestURI(), Header: c.Request.Header, Body: body})
	var refusal *inbound.Refusal
	switch {
	case err == nil:
		a.metrics.InboundWebhook(provider, "relayed")
		c.JSON(http.StatusAccepted, gin.H{"status": "accepted"})
	case errors.As(err, &refusal):
		a.metrics.InboundWebhook(provider, refusal.Reason)
		fail(c, err)
	default:
		a.metrics.InboundWebhook(provider, "error")
		fail(c, err)
	}
}

func (a inboundAPI) getSecret(c *gin.Context, ws, _, key string, provider bool) (inbound.SecretView, error) {
	return a.svc.GetSecret(c.Request.Context(), ws, key, provider)
}

type secretOp func(c *gin.Context, workspaceID, actor, key string, provider bool) (inbound.SecretView, error)

func (a inboundAPI) secretHandler(provider bool, op secretOp) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, key := principal(c), c.Param("id")
		if provider {
			key = c.Param("key")
		}
		v, err := op(c, p.WorkspaceID, p.KeyID, key, provider)
		if err != nil {
			fail(c, err)
			return
		}
		c.JSON(http.StatusOK, v)
	}
}

// handlePutSecret: PUT .../webhook-secret {"secret":"...","keep_previous":true}.
func (a inboundAPI) handlePutSecret(provider bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req struct {
			Secret       vault.Secret `json:"secret"`
			KeepPrevious bool         `json:"keep_previous"`
		}
		if !bindJSON(c, &req) {
			return
		}
		defer req.Secret.Wipe()
		a.secretHandler(provider, func(c *gin.Context, ws, actor, key string, p bool) (inbound.SecretView, error) {
			return a.svc.SetSecret(c.Request.Context(), ws, actor, key, p, req.Secret, req.KeepPrevious)
		})(c)
	}
}

// handleDeleteSecret: DELETE .../webhook-secret (both) or .../webhook-secret/previous.
func (a inboundAPI) handleDeleteSecret(provider, previousOnly bool) gin.HandlerFunc {
	return a.secretHandler(provider, func(c *gin.Context, ws, actor, key string, p bool) (inbound.SecretView, error) {
		return a.svc.RemoveSecret(c.Request.Context(), ws, actor, key, p, previousOnly)
	})
}

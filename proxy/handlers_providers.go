package proxy

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/providers"
	"github.com/authpipe/authpipe-proxy/vault"
)

// providersAPI is /v1/providers and /v1/catalog: the handlers parse and render; the
// providers service builds, validates, stores and resolves.
type providersAPI struct {
	svc    *providers.Service
	events EventSink
}

func (a providersAPI) routes(api *gin.RouterGroup) {
	api.GET("/catalog", a.handleCatalog)
	api.GET("/providers", a.handleList)
	api.GET("/providers/:key", a.handleGet)
	api.PUT("/providers/:key", require(admin.ScopeProvidersWrite), a.handlePut)
	api.DELETE("/providers/:key", require(admin.ScopeProvidersWrite), a.handleDelete)
	// An OAuth app's secret rotation ends by an admin: the next secret becomes current, or goes.
	api.POST("/providers/:key/client-secret/promote", require(admin.ScopeAdmin), a.handleEndRotation)
	api.DELETE("/providers/:key/client-secret/next", require(admin.ScopeAdmin), a.handleEndRotation)
}

func (a providersAPI) handleEndRotation(c *gin.Context) {
	p := principal(c)
	end := a.svc.PromoteNextSecret
	if c.Request.Method == http.MethodDelete {
		end = a.svc.DropNextSecret
	}
	v, err := end(c.Request.Context(), p.WorkspaceID, p.KeyID, c.Param("key"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (a providersAPI) handlePut(c *gin.Context) {
	key := c.Param("key")
	if err := providers.CheckKey(key); err != nil {
		fail(c, err)
		return
	}
	var req struct {
		Template     string        `json:"template"`
		ClientID     string        `json:"client_id"`
		ClientSecret *vault.Secret `json:"client_secret"`
		// ClientSecretNext is the OAuth app's next secret during a secret rotation.
		ClientSecretNext *vault.Secret `json:"client_secret_next"`
		Scopes           []string      `json:"scopes"`
		CallbackURLs     []string      `json:"callback_urls"`
		ReturnURLs       []string      `json:"return_urls"`
	}
	if !bindJSON(c, &req) {
		return
	}
	var overrides map[string]json.RawMessage // every other field overrides the template's
	_ = json.Unmarshal(mustBody(c), &overrides)
	p := principal(c)
	// The service decides what the caller's authority allows (an origin change needs admin).
	by := providers.Caller{Actor: p.KeyID, Admin: p.Has(admin.ScopeAdmin)}
	res, err := a.svc.PutWithNext(c.Request.Context(), p.WorkspaceID, by, providers.Request{Key: key, Template: req.Template,
		ClientID: req.ClientID, Scopes: req.Scopes, CallbackURLs: req.CallbackURLs, ReturnURLs: req.ReturnURLs,
		Overrides: overrides}, req.ClientSecret, req.ClientSecretNext)
	if err != nil {
		fail(c, err)
		return
	}
	for _, conn := range res.Reauthed {
		emitConnection(c.Request.Context(), a.events, controlplane.EventConnectionStatusChanged, conn, controlplane.ErrorProviderOriginChanged)
	}
	c.JSON(http.StatusOK, res)
}

// mustBody returns the body bindJSON already read (kept by gin's body cache, or re-read).
func mustBody(c *gin.Context) []byte {
	b, _ := c.Get(ctxBody)
	raw, _ := b.([]byte)
	return raw
}

func (a providersAPI) handleGet(c *gin.Context) {
	v, err := a.svc.View(c.Request.Context(), principal(c).WorkspaceID, c.Param("key"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (a providersAPI) handleList(c *gin.Context) {
	out, err := a.svc.List(c.Request.Context(), principal(c).WorkspaceID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"providers": out})
}

func (a providersAPI) handleDelete(c *gin.Context) {
	p := principal(c)
	if err := a.svc.Delete(c.Request.Context(), p.WorkspaceID, p.KeyID, c.Param("key")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (a providersAPI) handleCatalog(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"providers": a.svc.Catalog().All()})
}

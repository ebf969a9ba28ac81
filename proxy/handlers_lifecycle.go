package proxy

// The credential lifecycle over HTTP (API.md "Connections", "Administration"):
// disconnect with RFC 7009 revocation and retry (refresher.Revocations), GDPR erasure and
// export of one end user, workspace deletion (crypto-shredding), and the public keys of
// the audit checkpoints.

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Revocations disconnects connections, revoking their tokens at the providers
// (*refresher.Revocations satisfies it).
type Revocations interface {
	Disconnect(ctx context.Context, workspaceID, id, actor string) (store.Connection, bool, error)
	EraseEndUser(ctx context.Context, workspaceID, endUser, actor string) (int64, []store.Connection, error)
}

var _ Revocations = (*refresher.Revocations)(nil)

// lifecycleAPI is the lifecycle's HTTP side.
type lifecycleAPI struct {
	revocations    Revocations    // nil: disconnects, erasures and workspace deletions fail
	admin          *admin.Service // end-user export, workspace deletion
	events         EventSink
	checkpointKeys *admin.CheckpointKeys
	log            *slog.Logger
}

func (a *lifecycleAPI) routes(api *gin.RouterGroup) {
	api.DELETE("/end-users/:end_user_id", require(admin.ScopeAdmin), a.handleEraseEndUser)
	api.GET("/end-users/:end_user_id/export", require(admin.ScopeAdmin), a.handleExportEndUser)
	api.DELETE("/workspaces/:id", require(admin.ScopeWorkspacesWrite), a.handleDeleteWorkspace)
	api.GET("/audit/checkpoint-keys", require(admin.ScopeAuditRead), a.handleCheckpointKeys)
}

// errNoRevocations fails what needs the revocation service on a server built without one.
var errNoRevocations = problem.ErrInternal.WithCause(errors.New("proxy: no revocation service"))

// handleDisconnect is DELETE /v1/connections/{id}: the connection is disconnected and an
// OAuth connection's tokens revoked at the provider (refresher.Revocations.Disconnect).
func (a *lifecycleAPI) handleDisconnect(c *gin.Context) {
	if a.revocations == nil {
		fail(c, errNoRevocations)
		return
	}
	ctx := c.Request.Context()
	p := principal(c)
	conn, changed, err := a.revocations.Disconnect(ctx, p.WorkspaceID, c.Param("id"), p.KeyID)
	if err != nil {
		fail(c, err)
		return
	}
	if changed {
		emitConnection(ctx, a.events, controlplane.EventConnectionDisconnected, conn, "")
	}
	c.JSON(http.StatusOK, viewOf(conn))
}

// handleEraseEndUser is DELETE /v1/end-users/{end_user_id} (GDPR art. 17): every
// connection of that end user in the caller's workspace is revoked where possible and
// hard-deleted now (refresher.Revocations.EraseEndUser).
func (a *lifecycleAPI) handleEraseEndUser(c *gin.Context) {
	ctx := c.Request.Context()
	p := principal(c)
	endUser := c.Param("end_user_id")
	if !admin.ValidEndUserID(endUser) {
		fail(c, admin.ErrInvalidEndUserID)
		return
	}
	if a.revocations == nil {
		fail(c, errNoRevocations)
		return
	}
	n, conns, err := a.revocations.EraseEndUser(ctx, p.WorkspaceID, endUser, p.KeyID)
	if err != nil {
		fail(c, err)
		return
	}
	for _, gone := range conns {
		gone.Status = store.StatusDisconnected
		emitConnection(ctx, a.events, controlplane.EventConnectionErased, gone, "")
	}
	c.JSON(http.StatusOK, gin.H{"deleted": n})
}

// handleExportEndUser is GET /v1/end-users/{end_user_id}/export (GDPR art. 15/20): the
// end user's connections' metadata in this workspace, no secret.
func (a *lifecycleAPI) handleExportEndUser(c *gin.Context) {
	ctx := c.Request.Context()
	p := principal(c)
	exp, err := a.admin.ExportEndUser(ctx, p.WorkspaceID, c.Param("end_user_id"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, exp)
}

// handleDeleteWorkspace is DELETE /v1/workspaces/{id} (scope workspaces:write): revoke,
// crypto-shred and delete (admin.DeleteWorkspace).
func (a *lifecycleAPI) handleDeleteWorkspace(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("id")
	del, err := a.admin.DeleteWorkspace(ctx, id, principal(c).KeyID)
	if err != nil {
		fail(c, err)
		return
	}
	a.log.InfoContext(ctx, "workspace deleted", "workspace", id, "connections", del.Connections, "revoked", del.Revoked,
		"deks_destroyed", del.DEKs, "final_audit_seq", del.FinalHead.Seq)
	c.Status(http.StatusNoContent)
}

// handleCheckpointKeys is GET /v1/audit/checkpoint-keys: the public keys that sign audit
// checkpoints, so that a checkpoint file can be checked offline against a pinned key id.
func (a *lifecycleAPI) handleCheckpointKeys(c *gin.Context) {
	pub, err := a.checkpointKeys.Published(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	keys := make([]gin.H, 0, len(pub)) // the active key first; rotated keys stay published
	for _, p := range pub {
		keys = append(keys, gin.H{"kid": p.KeyID, "alg": "Ed25519", "state": p.State,
			"public_key": base64.RawURLEncoding.EncodeToString(p.PublicKey)})
	}
	c.JSON(http.StatusOK, gin.H{"keys": keys})
}

package proxy

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// handleRefresh is POST /v1/connections/{id}/refresh: refresh now, answer the metadata.
// A provider that cannot refresh answers 503 refresh_unavailable; the connection stays
// active.
func (s *Server) handleRefresh(c *gin.Context) {
	ctx := c.Request.Context()
	p := principal(c)
	conn, err := s.store.Connection(ctx, p.WorkspaceID, c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	if !oauthflow.AuthMode(conn.AuthMode).HasAccessToken() {
		fail(c, problem.ErrInvalidRequest.WithDetail("only OAuth and minted-token connections are refreshed"))
		return
	}
	conn, err = s.tokens.Refresh(ctx, p.WorkspaceID, conn.ID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(conn))
}

package proxy

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// TokenService is the token service as the HTTP layer sees it (refresher.Tokens): the
// one decision "serve, refresh first, or refuse" and the opening of the credential.
type TokenService interface {
	Credential(ctx context.Context, workspaceID, connectionID string, minValidity time.Duration) (refresher.Credential, error)
	Refresh(ctx context.Context, workspaceID, connectionID string) (store.Connection, error)
	ForceRefresh(ctx context.Context, workspaceID, connectionID string) (vault.Secret, error)
}

var _ TokenService = (*refresher.Tokens)(nil)

// maxMinValidity caps ?min_validity (a day): a larger ask is a client bug.
const maxMinValidity = 86400

// minValidity parses ?min_validity: whole seconds the returned token must stay valid.
func minValidity(c *gin.Context) (time.Duration, error) {
	if c.Request.URL.RawQuery == "" {
		return 0, nil // the common case: gin's query cache (a map) is never built
	}
	v := c.Query("min_validity")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxMinValidity {
		return 0, problem.ErrInvalidRequest.WithField("min_validity", "whole seconds from 0 to 86400")
	}
	return time.Duration(n) * time.Second, nil
}

// refreshProblem maps the refresher's errors onto the API's problems.
func refreshProblem(err error) error {
	switch {
	case errors.Is(err, refresher.ErrNeedsReauth):
		return problem.ErrNeedsReauth
	case errors.Is(err, refresher.ErrDisconnected):
		return problem.ErrDisconnected
	case errors.Is(err, refresher.ErrUnavailable):
		return problem.ErrRefreshUnavailable.WithDetail("the provider could not refresh the token now").WithRetryAfter(5)
	case errors.Is(err, context.DeadlineExceeded):
		return problem.ErrRefreshUnavailable.WithCause(err)
	}
	return err
}

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
	if conn.AuthMode != string(oauthflow.AuthModeOAuth2) {
		fail(c, problem.ErrInvalidRequest.WithDetail("only OAuth connections are refreshed"))
		return
	}
	conn, err = s.tokens.Refresh(ctx, p.WorkspaceID, conn.ID)
	if err != nil {
		fail(c, refreshProblem(err))
		return
	}
	c.JSON(http.StatusOK, viewOf(conn))
}

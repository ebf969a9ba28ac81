package proxy

import (
	"context"
	"encoding/json"
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

// TokenService is the refresher as the HTTP layer sees it (refresher.Refresher).
type TokenService interface {
	// NeedsRefresh reads only the row: the hot path asks it on every request.
	NeedsRefresh(c store.Connection, minValidity time.Duration) bool
	Token(ctx context.Context, workspaceID, connectionID string, minValidity time.Duration) (refresher.Token, error)
	Refresh(ctx context.Context, workspaceID, connectionID string) (store.Connection, error)
	ForceRefresh(ctx context.Context, workspaceID, connectionID string) (vault.Secret, error)
}

var _ TokenService = (*refresher.Refresher)(nil)

// maxMinValidity caps ?min_validity (a day): a larger ask is a client bug.
const maxMinValidity = 86400

// serveOAuthToken is handleToken's OAuth branch: a token outside the lead window and valid
// for min_validity is opened from the row already read (no further query, no provider
// call); otherwise the refresher refreshes it first (single-flight, leased) or serves the
// current one while the provider is down and it is still valid.
func (s *Server) serveOAuthToken(c *gin.Context, cc store.ConnectionCredential, resp *tokenResponse) error {
	ctx := c.Request.Context()
	var minValidity time.Duration
	if v := c.Query("min_validity"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxMinValidity {
			return problem.ErrInvalidRequest.WithField("min_validity", "whole seconds from 0 to 86400")
		}
		minValidity = time.Duration(n) * time.Second
	}
	if s.tokens == nil || !s.tokens.NeedsRefresh(cc.Connection, minValidity) {
		return s.oauthToken(ctx, cc, resp) // handlers_connect.go
	}
	t, err := s.tokens.Token(ctx, cc.WorkspaceID, cc.ID, minValidity)
	if err != nil {
		return refreshProblem(err)
	}
	resp.AccessToken, resp.TokenType, resp.ExpiresAt = t.AccessToken.Reveal(), t.TokenType, utc(t.ExpiresAt)
	if t.Conn.Scopes != nil {
		resp.Scopes = t.Conn.Scopes
	}
	return nil
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
	if s.tokens == nil {
		fail(c, problem.ErrRefreshUnavailable)
		return
	}
	conn, err = s.tokens.Refresh(ctx, p.WorkspaceID, conn.ID)
	if err != nil {
		fail(c, refreshProblem(err))
		return
	}
	c.JSON(http.StatusOK, viewOf(conn))
}

// ProviderSource resolves a workspace's integration for the refresher: the stored
// configuration (or, for API-key providers, the catalog template) and the opened client
// secret.
type ProviderSource struct {
	Store   *store.Store
	Secrets *vault.Keyring // purpose client_secrets
	Catalog *oauthflow.Catalog
}

var _ refresher.Providers = ProviderSource{}

// Provider implements refresher.Providers.
func (ps ProviderSource) Provider(ctx context.Context, workspaceID, key string) (oauthflow.Provider, oauthflow.ClientCredentials, error) {
	row, err := ps.Store.Provider(ctx, workspaceID, key)
	if errors.Is(err, store.ErrNotFound) && ps.Catalog != nil {
		if t, ok := ps.Catalog.Get(key); ok && t.AuthMode == oauthflow.AuthModeAPIKey {
			return t, oauthflow.ClientCredentials{}, nil
		}
	}
	if err != nil {
		return oauthflow.Provider{}, oauthflow.ClientCredentials{}, err
	}
	var cfg ProviderConfig
	if err := json.Unmarshal([]byte(row.Config), &cfg); err != nil {
		return oauthflow.Provider{}, oauthflow.ClientCredentials{}, err
	}
	cc := oauthflow.ClientCredentials{ClientID: cfg.ClientID}
	switch sec, err := ps.Store.ProviderSecret(ctx, row.ID); {
	case err == nil:
		if cc.ClientSecret, err = ps.Secrets.Open(ctx, vault.ClientSecretBinding(workspaceID, row.ID), sec.Sealed); err != nil {
			return oauthflow.Provider{}, oauthflow.ClientCredentials{}, err
		}
	case !errors.Is(err, store.ErrNotFound):
		return oauthflow.Provider{}, oauthflow.ClientCredentials{}, err
	}
	return cfg.Provider, cc, nil
}

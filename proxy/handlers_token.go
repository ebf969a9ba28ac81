package proxy

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/audit"
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
	Usable(ctx context.Context, workspaceID, connectionID string) (store.ConnectionCredential, error)
	Open(ctx context.Context, cc store.ConnectionCredential, minValidity time.Duration) (refresher.Credential, error)
	Refresh(ctx context.Context, workspaceID, connectionID string) (store.Connection, error)
	ForceRefresh(ctx context.Context, workspaceID, connectionID string) (vault.Secret, error)
	// Narrowed mints a GitHub App token limited to n for one read (never cached), audited
	// as token.narrowed with actor (refresher/narrowed.go).
	Narrowed(ctx context.Context, workspaceID, connectionID, actor string, n *oauthflow.Narrowing) (refresher.Credential, error)
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

// narrowing parses ?repositories=a,b&permissions=contents:read,issues:write (a GitHub App
// token limited to them: oauthflow.ParseNarrowing); nil when neither is given. Only called
// when the request has a query.
func narrowing(c *gin.Context) (*oauthflow.Narrowing, error) {
	repos, hasRepos := c.GetQuery("repositories")
	perms, hasPerms := c.GetQuery("permissions")
	return oauthflow.ParseNarrowing(repos, hasRepos, perms, hasPerms)
}

// tokenResponse is the body of the hot path. Its secret fields are plain strings on
// purpose: this is where a credential leaves the vault, and only here.
type tokenResponse struct {
	ConnectionID   string     `json:"connection_id"`
	CredentialType string     `json:"credential_type"`
	AccessToken    string     `json:"access_token,omitempty"`
	APIKey         string     `json:"api_key,omitempty"`
	Username       string     `json:"username,omitempty"` // basic
	Password       string     `json:"password,omitempty"` // basic
	TokenType      string     `json:"token_type,omitempty"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	Scopes         []string   `json:"scopes"`
	Metadata       rawJSON    `json:"metadata,omitempty"` // the connection's, when it has any
}

// handleToken is the hot path: principal from the auth cache, then the token service
// (refresher.Tokens): one indexed read of the connection and its sealed credential (or the
// store's sealed-row cache), opened with a cached DEK, refreshed first only when it must
// be; a batched audit event.
func (s *Server) handleToken(c *gin.Context) {
	ctx := c.Request.Context()
	p := principal(c)
	minValidity, err := minValidity(c)
	if err != nil {
		fail(c, err)
		return
	}
	if c.Request.URL.RawQuery != "" {
		n, err := narrowing(c)
		if err != nil {
			fail(c, err)
			return
		}
		if n != nil {
			s.narrowedToken(c, n)
			return
		}
	}
	cred, err := s.tokens.Credential(ctx, p.WorkspaceID, c.Param("id"), minValidity)
	if cred.Kind != "" {
		markCredentialType(c, string(cred.Kind))
	}
	if err != nil {
		fail(c, err)
		return
	}
	resp := tokenResponse{ConnectionID: cred.Conn.ID, CredentialType: string(cred.Kind), Scopes: cred.Scopes}
	if resp.Scopes == nil {
		resp.Scopes = []string{}
	}
	if md := cred.Conn.Metadata; md != "" && md != "{}" {
		resp.Metadata = rawJSON(md)
	}
	// The value is converted here, not by Reveal, so that the string stays on this stack
	// frame: Secret is defined in internal/secret, which proxy does not import, and the
	// compiler does not inline methods of such a package (TestTokenRouteAllocations).
	switch cred.Kind {
	case oauthflow.AuthModeAPIKey:
		resp.APIKey = string(cred.Secret.Bytes())
	case oauthflow.AuthModeBasic:
		b, err := oauthflow.OpenBasic(cred.Secret)
		if err != nil {
			fail(c, err)
			return
		}
		resp.Username, resp.Password = string(b.Username.Bytes()), string(b.Password.Bytes())
	default:
		resp.AccessToken, resp.TokenType, resp.ExpiresAt = string(cred.Secret.Bytes()), cred.TokenType, admin.UTC(cred.ExpiresAt)
	}
	// The read is audited before the credential leaves: if the log cannot take it, the
	// request fails closed. Reads are counted per key, connection and window (reads.go); a
	// read waits for room when the writer is behind.
	rk := audit.ReadKey{WorkspaceID: p.WorkspaceID, Actor: p.KeyID, ConnectionID: cred.Conn.ID, Type: audit.TokenRead,
		Outcome: audit.Success}
	readClient(c, &rk) // the client baseline (reads.go)
	if err := s.audit.Count(ctx, rk, s.now()); err != nil {
		fail(c, err)
		return
	}
	// Hand-rolled encoding (json.go): same bytes as encoding/json, no reflection; written
	// directly (net/http adds Content-Length), without gin's render boxing and header copies.
	c.Writer.Header()["Content-Type"] = jsonContentType
	c.Writer.WriteHeader(http.StatusOK)
	_, _ = c.Writer.Write(resp.appendJSON(make([]byte, 0, 320)))
}

// narrowedToken is the token endpoint asked for a narrowed GitHub App token: minted for
// this read alone by the token service, which audits it (token.narrowed, with what it was
// limited to) before it is returned. It is also counted as a read, exactly like a plain
// one (same key, connection and client), so that the anomaly detection sees it
// (key_connections_burst, new_client_address): a narrowed read asking for everything is
// still a read of the installation. Counted before it leaves: fail closed.
func (s *Server) narrowedToken(c *gin.Context, n *oauthflow.Narrowing) {
	p := principal(c)
	cred, err := s.tokens.Narrowed(c.Request.Context(), p.WorkspaceID, c.Param("id"), p.KeyID, n)
	if cred.Kind != "" {
		markCredentialType(c, string(cred.Kind))
	}
	if err != nil {
		fail(c, err)
		return
	}
	rk := audit.ReadKey{WorkspaceID: p.WorkspaceID, Actor: p.KeyID, ConnectionID: cred.Conn.ID, Type: audit.TokenRead,
		Outcome: audit.Success}
	readClient(c, &rk)
	if err := s.audit.Count(c.Request.Context(), rk, s.now()); err != nil {
		cred.Secret.Wipe() // audited as token.narrowed, never handed out; it expires within the hour
		fail(c, err)
		return
	}
	resp := tokenResponse{ConnectionID: cred.Conn.ID, CredentialType: string(cred.Kind), Scopes: cred.Scopes,
		AccessToken: string(cred.Secret.Bytes()), TokenType: cred.TokenType, ExpiresAt: admin.UTC(cred.ExpiresAt)}
	if md := cred.Conn.Metadata; md != "" && md != "{}" {
		resp.Metadata = rawJSON(md)
	}
	c.Writer.Header()["Content-Type"] = jsonContentType
	c.Writer.WriteHeader(http.StatusOK)
	_, _ = c.Writer.Write(resp.appendJSON(make([]byte, 0, 320)))
}

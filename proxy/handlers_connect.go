package proxy

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// The OAuth connect flow (API.md "Connect", docs/oauth.md):
//
//	POST /v1/connect/sessions         the application asks for a session    (API key)
//	GET  /v1/connect/{session}        the browser starts it: 302 to provider (no API key)
//	GET  /v1/oauth/callback           the provider sends the browser back    (no API key)
//	POST /v1/connections/{id}/reconnect  a session that restores a connection (API key)
//
// The session id in the connect URL is the browser's capability to start the flow, once.
// The state, PKCE verifier and browser nonce are made when the browser starts it: the
// store keeps the state's SHA-256, the verifier sealed, and an HMAC of the nonce. The
// state carries its own MAC, checked before the store is asked (connect_state.go).

type connectRequest struct {
	Provider    string   `json:"provider"`
	EndUserID   string   `json:"end_user_id"`
	CallbackURL string   `json:"callback_url"`
	ReturnURL   string   `json:"return_url"`
	Scopes      []string `json:"scopes"`
}

type connectResponse struct {
	ID         string    `json:"id"`
	ConnectURL string    `json:"connect_url"`
	ExpiresAt  time.Time `json:"expires_at"`
}

func (s *Server) handleCreateConnectSession(c *gin.Context) {
	var req connectRequest
	if !bindJSON(c, &req) {
		return
	}
	switch {
	case !providerKey.MatchString(req.Provider):
		fail(c, problem.ErrInvalidRequest.WithField("provider", "required"))
		return
	case !validEndUser(req.EndUserID):
		fail(c, problem.ErrInvalidRequest.WithField("end_user_id", "1–256 printable characters"))
		return
	}
	s.createConnectSession(c, req, "")
}

func (s *Server) handleReconnect(c *gin.Context) {
	var req connectRequest
	if c.Request.ContentLength != 0 && !bindJSON(c, &req) {
		return
	}
	conn, err := s.store.Connection(c.Request.Context(), principal(c).WorkspaceID, c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	if conn.AuthMode != string(oauthflow.AuthModeOAuth2) {
		fail(c, problem.ErrInvalidRequest.WithDetail("only OAuth connections can be reconnected"))
		return
	}
	req.Provider, req.EndUserID = conn.Provider, conn.EndUserID
	if req.Scopes == nil && len(conn.Scopes) > 0 {
		req.Scopes = conn.Scopes
	}
	s.createConnectSession(c, req, conn.ID)
}

func (s *Server) createConnectSession(c *gin.Context, req connectRequest, reconnectID string) {
	ctx := c.Request.Context()
	p := principal(c)
	_, cfg, err := s.workspaceProvider(ctx, p.WorkspaceID, req.Provider)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, problem.ErrInvalidRequest.WithField("provider", "no such provider in this workspace"))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	if cfg.AuthMode != oauthflow.AuthModeOAuth2 || cfg.ClientID == "" {
		fail(c, problem.ErrInvalidRequest.WithField("provider", "not an oauth2 provider with a client_id"))
		return
	}
	if len(cfg.Placeholders()) > 0 {
		fail(c, problem.ErrInvalidRequest.WithField("provider", "the provider's URLs still contain placeholders"))
		return
	}
	callback, ok := pickURL(req.CallbackURL, cfg.CallbackURLs)
	if !ok || callback == "" {
		fail(c, problem.ErrInvalidCallbackURL.WithDetail("callback_url must be one of the provider's callback_urls, exactly"))
		return
	}
	ret, ok := pickURL(req.ReturnURL, cfg.ReturnURLs)
	if !ok {
		fail(c, problem.ErrInvalidReturnURL.WithDetail("return_url must be one of the provider's return_urls, exactly"))
		return
	}
	scopes := req.Scopes
	if scopes == nil {
		scopes = cfg.Scopes
	}
	if err := checkScopes(scopes); err != nil {
		fail(c, err)
		return
	}
	id, err := s.newSessionID(ctx) // MAC'd: the connect route checks it before any lookup (connect_session.go)
	if err != nil {
		fail(c, err)
		return
	}
	now := s.now().UTC()
	cs := store.ConnectSession{ID: id, WorkspaceID: p.WorkspaceID, Provider: req.Provider,
		EndUserID: req.EndUserID, CallbackURL: callback, ReturnURL: ret, Scopes: store.Strings(scopes),
		ReconnectConnectionID: reconnectID, ExpiresAt: now.Add(oauthflow.SessionLifetime), CreatedAt: now}
	if err := s.store.CreateConnectSession(ctx, cs); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, connectResponse{ID: cs.ID, ConnectURL: s.cfg.PublicURL + "/v1/connect/" + cs.ID,
		ExpiresAt: cs.ExpiresAt})
}

// pickURL applies an exact-match allowlist: an empty request takes the first entry (or
// none when the list is empty); anything else must be byte for byte an entry.
func pickURL(requested string, allowlist []string) (string, bool) {
	if requested == "" {
		if len(allowlist) == 0 {
			return "", true
		}
		return allowlist[0], true
	}
	return oauthflow.MatchAllowlist(requested, allowlist)
}

func checkScopes(scopes []string) error {
	if len(scopes) > 100 {
		return problem.ErrInvalidRequest.WithField("scopes", "at most 100")
	}
	for _, sc := range scopes {
		if sc == "" || len(sc) > 256 || strings.ContainsFunc(sc, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '"' || r == '\\' }) {
			return problem.ErrInvalidRequest.WithField("scopes", "each scope: 1–256 characters, no space, quote, backslash or control character")
		}
	}
	return nil
}

// handleStartConnect is the browser's first request: it makes the state, the PKCE
// verifier and the browser nonce, records them once, sets the flow cookie and redirects
// to the provider.
func (s *Server) handleStartConnect(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("session")
	// The id's MAC before anything else: an id this deployment did not make never reaches
	// the store (connect_session.go).
	switch ok, err := s.checkSessionID(ctx, id); {
	case err != nil:
		fail(c, err)
		return
	case !ok:
		fail(c, problem.ErrNotFound)
		return
	}
	cs, err := s.store.ConnectSession(ctx, id)
	if err != nil {
		fail(c, err)
		return
	}
	now := s.now().UTC()
	if cs.StartedAt != nil || cs.UsedAt != nil || !now.Before(cs.ExpiresAt) {
		fail(c, problem.ErrInvalidState.WithDetail("this connect link was already used or has expired"))
		return
	}
	_, cfg, err := s.workspaceProvider(ctx, cs.WorkspaceID, cs.Provider)
	if err != nil {
		fail(c, err)
		return
	}
	state, stateHash, err := s.newState(ctx) // MAC'd under a state key (connect_state.go)
	if err != nil {
		fail(c, err)
		return
	}
	verifier, err := oauthflow.NewVerifier()
	if err != nil {
		fail(c, err)
		return
	}
	cookieName, secure := s.flowCookieName()
	// A browser already in a flow keeps its nonce, so two tabs' flows both stay bound.
	nonce, cerr := c.Cookie(cookieName)
	if cerr != nil || oauthflow.CheckNonceFormat(nonce) != nil {
		if nonce, err = oauthflow.NewBrowserNonce(); err != nil {
			fail(c, err)
			return
		}
	}
	authURL, err := oauthflow.AuthCodeURL(cfg.Provider, oauthflow.AuthRequest{ClientID: cfg.ClientID,
		RedirectURI: cs.CallbackURL, Scopes: cs.Scopes, State: state, Verifier: verifier})
	if err != nil {
		fail(c, problem.ErrInvalidRequest.WithDetail("the provider configuration cannot make an authorization request").WithCause(err))
		return
	}
	sealed, err := s.creds.Seal(ctx, vault.PKCEVerifierBinding(cs.WorkspaceID, cs.ID),
		vault.NewSecret(verifier))
	if err != nil {
		fail(c, err)
		return
	}
	binding, err := s.flowBinding(ctx, cs.ID, nonce) // kid ‖ ":" ‖ MAC (oauth.go)
	if err != nil {
		fail(c, err)
		return
	}
	err = s.store.StartConnectSession(ctx, cs.ID, store.SessionStart{StateHash: stateHash, PKCEVerifier: sealed,
		BrowserBinding: binding}, now)
	if errors.Is(err, store.ErrConflict) {
		fail(c, problem.ErrInvalidState.WithDetail("this connect link was already used or has expired"))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: cookieName, Value: nonce, Path: "/", MaxAge: int(oauthflow.SessionLifetime / time.Second),
		Secure: secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	redirect(c, authURL)
}

// redirect answers 302 with only a Location header: no body that would repeat the URL
// (and the state in it) as http.Redirect's HTML does.
func redirect(c *gin.Context, location string) {
	c.Header("Location", location)
	c.Status(http.StatusFound)
	c.Writer.WriteHeaderNow()
}

// handleOAuthCallback validates the authorization response and, only when everything
// holds, consumes the session, exchanges the code and stores the connection. A rejected
// callback stores nothing and sets no cookie.
func (s *Server) handleOAuthCallback(c *gin.Context) {
	ctx := c.Request.Context()
	q := c.Request.URL.Query()
	invalid := problem.ErrInvalidState.WithDetail("unknown, used, expired or foreign state")
	state := q.Get("state")
	if len(q["state"]) != 1 {
		fail(c, invalid)
		return
	}
	// The state's MAC before anything else: a state this deployment did not make never
	// reaches the store (connect_state.go).
	switch ok, err := s.checkState(ctx, state); {
	case err != nil:
		fail(c, err)
		return
	case !ok:
		fail(c, invalid)
		return
	}
	stateHash := oauthflow.HashState(state)
	cs, err := s.store.ConnectSessionByState(ctx, stateHash)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, invalid)
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	now := s.now().UTC()
	if cs.UsedAt != nil || !now.Before(cs.ExpiresAt) {
		fail(c, invalid)
		return
	}
	cookieName, _ := s.flowCookieName()
	nonce, _ := c.Cookie(cookieName)
	bound, err := s.verifyFlowBinding(ctx, cs.ID, nonce, cs.BrowserBinding) // by the stored kid (oauth.go)
	if err != nil {
		fail(c, err)
		return
	}
	if !bound {
		fail(c, invalid)
		return
	}
	cb, err := oauthflow.ParseCallback(q)
	if err != nil {
		fail(c, problem.ErrInvalidRequest.WithDetail("malformed authorization response"))
		return
	}
	provRow, cfg, err := s.workspaceProvider(ctx, cs.WorkspaceID, cs.Provider)
	if err != nil {
		fail(c, err)
		return
	}
	// RFC 9207: before anything else is done with the response, and for error responses too.
	if err := oauthflow.CheckIssuer(cfg.Provider, cb); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "connect: issuer check failed", slog.String("session", cs.ID),
			slog.String("provider", cs.Provider), slog.String("reason", err.Error()))
		fail(c, problem.ErrIssuerMismatch.WithDetail("the authorization response's iss does not match the provider's issuer"))
		return
	}
	// Single use from here on: of two callbacks with this state, one gets past this line.
	if err := s.store.ConsumeConnectSession(ctx, cs.ID, stateHash, now); err != nil {
		if errors.Is(err, store.ErrConflict) {
			fail(c, invalid)
		} else {
			fail(c, err)
		}
		return
	}
	if cb.Error != "" {
		code := oauthflow.ErrorCode(cb.Error)
		s.log.LogAttrs(ctx, slog.LevelInfo, "connect: provider refused", slog.String("session", cs.ID),
			slog.String("provider", cs.Provider), slog.String("error", code))
		s.finishFlow(c, cs.ReturnURL, url.Values{"status": {"error"}, "error": {code}})
		return
	}
	conn, err := s.completeFlow(ctx, cs, provRow, cfg, cb.Code, now)
	var fe *flowError
	if errors.As(err, &fe) {
		s.log.LogAttrs(ctx, slog.LevelWarn, "connect: code exchange failed", slog.String("session", cs.ID),
			slog.String("provider", cs.Provider), slog.String("error", fe.code), slog.Int("status", fe.status))
		s.finishFlow(c, cs.ReturnURL, url.Values{"status": {"error"}, "error": {fe.code}})
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	if cs.ReconnectConnectionID != "" {
		s.emitConnection(ctx, controlplane.EventConnectionStatusChanged, conn, "") // active again
	} else {
		s.emitConnection(ctx, controlplane.EventConnectionCreated, conn, "")
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "connect: connection stored", slog.String("session", cs.ID),
		slog.String("provider", cs.Provider), slog.String("connection", conn.ID), slog.Bool("reconnect", cs.ReconnectConnectionID != ""))
	s.finishFlow(c, cs.ReturnURL, url.Values{"connection_id": {conn.ID}, "status": {"connected"}})
}

// flowError is a provider-side failure of the exchange: the flow ends on the return URL
// with status=error and the code (an RFC 6749 code, unsafe_url or provider_error).
type flowError struct {
	code   string
	status int
}

func (e *flowError) Error() string { return "connect: " + e.code }

// completeFlow exchanges the code with the sealed verifier and stores the connection.
func (s *Server) completeFlow(ctx context.Context, cs store.ConnectSession, provRow store.Provider, cfg ProviderConfig,
	code string, now time.Time) (store.Connection, error) {
	verifier, err := s.creds.Open(ctx, vault.PKCEVerifierBinding(cs.WorkspaceID, cs.ID), cs.PKCEVerifier)
	if err != nil {
		return store.Connection{}, err
	}
	cc := oauthflow.ClientCredentials{ClientID: cfg.ClientID}
	switch sec, err := s.store.ProviderSecret(ctx, provRow.ID); {
	case err == nil:
		if cc.ClientSecret, err = s.secret.Open(ctx, vault.ClientSecretBinding(cs.WorkspaceID, provRow.ID), sec.Sealed); err != nil {
			return store.Connection{}, err
		}
	case !errors.Is(err, store.ErrNotFound):
		return store.Connection{}, err
	}
	hc, err := s.tokenClient(cfg.Provider)
	if err != nil {
		return store.Connection{}, err
	}
	tok, err := oauthflow.Exchange(ctx, hc, cfg.Provider, cc, code, verifier.Reveal(), cs.CallbackURL, now)
	if err != nil {
		var pe *oauthflow.ProviderError
		switch {
		case errors.As(err, &pe):
			return store.Connection{}, &flowError{code: pe.Code, status: pe.Status}
		case errors.Is(err, outbound.ErrUnsafeURL):
			return store.Connection{}, &flowError{code: "unsafe_url"}
		case errors.Is(err, context.Canceled):
			return store.Connection{}, err
		}
		s.log.LogAttrs(ctx, slog.LevelWarn, "connect: token request failed", slog.String("session", cs.ID), slog.Any("err", err))
		return store.Connection{}, &flowError{code: oauthflow.ProviderErrorCode}
	}
	connID, typ := ids.New(ids.Connection), audit.ConnectionCreated
	if cs.ReconnectConnectionID != "" {
		connID, typ = cs.ReconnectConnectionID, audit.ConnectionReconnected
	}
	scopes := tok.Scopes
	if scopes == nil {
		scopes = cs.Scopes
	}
	conn := store.Connection{ID: connID, WorkspaceID: cs.WorkspaceID, Provider: cs.Provider, EndUserID: cs.EndUserID,
		AuthMode: string(oauthflow.AuthModeOAuth2), Status: store.StatusActive, Scopes: store.Strings(scopes),
		CredentialPrefix: tok.AccessToken.Prefix(8), ExpiresAt: tok.ExpiresAt, LastRefreshedAt: nil, Version: 1,
		CreatedAt: now, UpdatedAt: now}
	if conn.Scopes == nil {
		conn.Scopes = store.Strings{}
	}
	// The refresher's seam: a connection with a refresh token and an expiry is due at its
	// expiry; the refresher applies its lead window to this.
	if !tok.RefreshToken.IsZero() && tok.ExpiresAt != nil {
		conn.NextRefreshAt = tok.ExpiresAt
	}
	cred := store.Credential{ConnectionID: connID, WorkspaceID: cs.WorkspaceID, TokenType: tok.TokenType, UpdatedAt: now}
	if cred.AccessToken, err = s.creds.Seal(ctx, vault.AccessTokenBinding(cs.WorkspaceID, connID), tok.AccessToken); err != nil {
		return store.Connection{}, err
	}
	if !tok.RefreshToken.IsZero() {
		if cred.RefreshToken, err = s.creds.Seal(ctx, vault.RefreshTokenBinding(cs.WorkspaceID, connID), tok.RefreshToken); err != nil {
			return store.Connection{}, err
		}
	}
	ev := audit.Event{WorkspaceID: cs.WorkspaceID, Type: typ, Actor: cs.ID, ConnectionID: connID, Outcome: audit.Success,
		Data: dataJSON("provider", cs.Provider)}
	return s.store.SaveOAuthConnection(ctx, conn, cred, cs.ReconnectConnectionID != "", ev)
}

var resultPage = template.Must(template.New("result").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{if .OK}}Connected{{else}}Connection failed{{end}}</title></head>
<body><h1>{{if .OK}}Connected{{else}}Connection failed{{end}}</h1>
{{if .OK}}<p>The account is connected. You can close this window.</p><p>Connection: <code id="connection_id">{{.ConnectionID}}</code></p>
{{else}}<p>The provider did not grant access. You can close this window and try again.</p><p>Error: <code id="error">{{.Error}}</code></p>{{end}}
</body></html>`))

// finishFlow sends the browser to the return URL with the result appended to its query,
// or shows a small page when the session has none.
func (s *Server) finishFlow(c *gin.Context, returnURL string, result url.Values) {
	if returnURL == "" {
		c.Header("Content-Type", "text/html; charset=utf-8")
		c.Status(http.StatusOK)
		_ = resultPage.Execute(c.Writer, map[string]any{"OK": result.Get("status") == "connected",
			"ConnectionID": result.Get("connection_id"), "Error": result.Get("error")})
		return
	}
	sep := "?"
	if strings.Contains(returnURL, "?") {
		sep = "&"
	}
	redirect(c, returnURL+sep+result.Encode())
}

// oauthToken fills resp with a connection's OAuth access token while it is valid. The
// refresh seam: an expired token answers 503 refresh_unavailable until the refresher
// (another issue) renews tokens here; min_validity and the lead window belong to it too.
func (s *Server) oauthToken(ctx context.Context, cc store.ConnectionCredential, resp *tokenResponse) error {
	if cc.AuthMode != string(oauthflow.AuthModeOAuth2) {
		return problem.ErrInternal.WithCause(errors.New("proxy: unknown auth mode"))
	}
	if cc.ExpiresAt != nil && !s.now().Before(*cc.ExpiresAt) {
		return problem.ErrRefreshUnavailable.WithDetail("the access token has expired and could not be refreshed")
	}
	if len(cc.Credential.AccessToken) == 0 {
		return problem.ErrNeedsReauth
	}
	tok, err := s.creds.Open(ctx, vault.AccessTokenBinding(cc.WorkspaceID, cc.ID), cc.Credential.AccessToken)
	if err != nil {
		return err
	}
	resp.AccessToken = tok.Reveal()
	resp.TokenType = cc.Credential.TokenType
	if resp.TokenType == "" {
		resp.TokenType = "Bearer"
	}
	resp.ExpiresAt = utc(cc.ExpiresAt)
	return nil
}

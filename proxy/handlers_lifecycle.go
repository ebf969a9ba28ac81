package proxy

// The credential lifecycle over HTTP (API.md "Connections", "Administration"):
// disconnect with RFC 7009 revocation and retry, GDPR erasure and export of one end user,
// workspace deletion (crypto-shredding), and the public keys of the audit checkpoints.

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/jitter"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// RevokeRetryActor is the actor of the retry job's audit events.
const RevokeRetryActor = "system:revoke-retry"

// Revocation error codes recorded in the audit chain (never a provider's text).
const (
	codeRevocationUnsupported = "revocation_unsupported"
	codeProviderUnavailable   = "provider_unavailable"
	codeProviderMissing       = "provider_missing"
)

// revokeTimeout bounds one revocation attempt (both tokens).
const revokeTimeout = 15 * time.Second

// lifecycleDeps is the lifecycle's share of the Server.
type lifecycleDeps struct {
	once sync.Once
	keys *CheckpointKeys
}

// CheckpointKeys returns the holder of the audit checkpoint signing key.
func (s *Server) CheckpointKeys() *CheckpointKeys {
	s.lifecycle.once.Do(func() { s.lifecycle.keys = NewCheckpointKeys(s.store, s.secret) })
	return s.lifecycle.keys
}

func (s *Server) lifecycleRoutes(api *gin.RouterGroup) {
	api.DELETE("/end-users/:end_user_id", require(ScopeAdmin), s.handleEraseEndUser)
	api.GET("/end-users/:end_user_id/export", require(ScopeAdmin), s.handleExportEndUser)
	api.DELETE("/workspaces/:id", require(ScopeWorkspacesWrite), s.handleDeleteWorkspace)
	api.GET("/audit/checkpoint-keys", require(ScopeAuditRead), s.handleCheckpointKeys)
}

// revokeAttempt is how one call to the provider ended.
type revokeAttempt struct {
	outcome store.RevokeOutcome
	code    string // error code for the audit event, "" on success
}

// revokeAtProvider revokes a connection's tokens at its provider (RFC 7009): the refresh
// token first, with token_type_hint, then the access token. A provider that answers 5xx or
// 429, a timeout or a network error is worth retrying; no revocation endpoint, or a
// permanent refusal, is not.
func (s *Server) revokeAtProvider(ctx context.Context, cc store.ConnectionCredential) revokeAttempt {
	if cc.Credential == nil || len(cc.Credential.AccessToken) == 0 && len(cc.Credential.RefreshToken) == 0 {
		return revokeAttempt{outcome: store.Revoked} // nothing left to revoke
	}
	p, creds, err := s.revocationProvider(ctx, cc.WorkspaceID, cc.Provider)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return revokeAttempt{outcome: store.NotRevocable, code: codeProviderMissing}
	case err != nil:
		return s.retryable(ctx, cc, err)
	case p.RevocationURL == "":
		return revokeAttempt{outcome: store.NotRevocable, code: codeRevocationUnsupported}
	}
	hc, err := s.tokenClient(p)
	if err != nil {
		return s.retryable(ctx, cc, err)
	}
	ctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	defer cancel()
	for _, t := range []struct {
		bind vault.Binding
		hint oauthflow.TokenTypeHint
		env  []byte
	}{
		{vault.RefreshTokenBinding(cc.WorkspaceID, cc.ID), oauthflow.HintRefreshToken, cc.Credential.RefreshToken},
		{vault.AccessTokenBinding(cc.WorkspaceID, cc.ID), oauthflow.HintAccessToken, cc.Credential.AccessToken},
	} {
		if len(t.env) == 0 {
			continue
		}
		tok, err := s.creds.Open(ctx, t.bind, t.env)
		if err != nil {
			return s.retryable(ctx, cc, err)
		}
		err = oauthflow.Revoke(ctx, hc, p, creds, tok, t.hint)
		tok.Wipe()
		if err != nil {
			return s.classifyRevoke(ctx, cc, err)
		}
	}
	return revokeAttempt{outcome: store.Revoked}
}

func (s *Server) classifyRevoke(ctx context.Context, cc store.ConnectionCredential, err error) revokeAttempt {
	var pe *oauthflow.ProviderError
	switch {
	case errors.Is(err, oauthflow.ErrRevocationUnsupported):
		return revokeAttempt{outcome: store.NotRevocable, code: codeRevocationUnsupported}
	case errors.As(err, &pe):
		if pe.Status >= 500 || pe.Status == http.StatusTooManyRequests {
			return revokeAttempt{outcome: store.RetryLater, code: codeProviderUnavailable}
		}
		// RFC 7009 section 2.2.1: e.g. unsupported_token_type; a permanent refusal.
		return revokeAttempt{outcome: store.NotRevocable, code: pe.Code}
	case errors.Is(err, outbound.ErrUnsafeURL):
		return revokeAttempt{outcome: store.NotRevocable, code: "unsafe_url"}
	}
	return s.retryable(ctx, cc, err)
}

// retryable logs a failure that may pass (timeout, network, KMS, database) without its
// text reaching the audit chain.
func (s *Server) retryable(ctx context.Context, cc store.ConnectionCredential, err error) revokeAttempt {
	code := codeProviderUnavailable
	var p *problem.Problem
	if errors.As(err, &p) {
		code = p.Code
	} else if errors.Is(err, vault.ErrKMSUnavailable) {
		code = problem.ErrKMSUnavailable.Code
	}
	s.log.WarnContext(ctx, "revocation: attempt failed; will retry", "connection", cc.ID, "code", code, "err", err)
	return revokeAttempt{outcome: store.RetryLater, code: code}
}

// revocationProvider resolves the provider of a connection with its client credentials.
func (s *Server) revocationProvider(ctx context.Context, workspaceID, key string) (oauthflow.Provider, oauthflow.ClientCredentials, error) {
	row, cfg, err := s.workspaceProvider(ctx, workspaceID, key)
	if err != nil {
		return oauthflow.Provider{}, oauthflow.ClientCredentials{}, err
	}
	cc := oauthflow.ClientCredentials{ClientID: cfg.ClientID}
	switch sec, err := s.store.ProviderSecret(ctx, row.ID); {
	case err == nil:
		if cc.ClientSecret, err = s.secret.Open(ctx, vault.ClientSecretBinding(workspaceID, row.ID), sec.Sealed); err != nil {
			return oauthflow.Provider{}, oauthflow.ClientCredentials{}, err
		}
	case !errors.Is(err, store.ErrNotFound):
		return oauthflow.Provider{}, oauthflow.ClientCredentials{}, err
	}
	return cfg.Provider, cc, nil
}

// revokeBackoff is the wait before retry number attempts+1: 30 s doubling to an hour,
// with up to 20 % jitter.
func revokeBackoff(attempts int) time.Duration {
	d := 30 * time.Second << min(attempts, 7)
	d = min(d, time.Hour)
	return d + jitter.Duration(d/5+1)
}

// revokePending makes one revocation attempt for a revoke_pending connection and records
// its outcome: the ciphertext deleted (revoked), kept sealed until retention (cannot be
// revoked), or a retry scheduled with backoff.
func (s *Server) revokePending(ctx context.Context, workspaceID, id, actor string) (store.Connection, error) {
	cc, err := s.store.ConnectionWithCredential(ctx, workspaceID, id)
	if err != nil {
		return store.Connection{}, err
	}
	if cc.Status != store.StatusRevokePending {
		return s.store.FinishRevoke(ctx, workspaceID, id, store.RevokeResult{Outcome: store.Revoked}) // drops a stale revocation: ErrConflict
	}
	att := s.revokeAtProvider(ctx, cc)
	ev := audit.Event{WorkspaceID: workspaceID, Type: audit.ConnectionRevoked, Actor: actor, ConnectionID: id,
		Outcome: audit.Success, ErrorCode: att.code, Data: dataJSON("provider", cc.Provider)}
	res := store.RevokeResult{Outcome: att.outcome, ErrorCode: att.code}
	switch att.outcome {
	case store.RetryLater:
		ev.Outcome = audit.Failure
		attempts := 0
		if r, err := s.store.RevocationOf(ctx, id); err == nil {
			attempts = r.Attempts
		}
		res.Next = s.now().Add(revokeBackoff(attempts))
		ev.Data = dataJSON("provider", cc.Provider, "retry", "scheduled")
	case store.NotRevocable:
		ev.Outcome = audit.Failure
		ev.Data = dataJSON("provider", cc.Provider, "credential", "sealed_until_retention")
	}
	return s.store.FinishRevoke(ctx, workspaceID, id, res, ev)
}

// RetryRevocations is the retry job: it claims up to limit revocations that are due and
// makes one attempt each. It returns how many connections it has finished (revoked or
// found not revocable).
func (s *Server) RetryRevocations(ctx context.Context, limit int) (int, error) {
	now := s.now()
	due, err := s.store.ClaimRevocations(ctx, now, now.Add(2*revokeTimeout+time.Minute), limit)
	if err != nil {
		return 0, err
	}
	finished := 0
	for _, r := range due {
		c, err := s.revokePending(ctx, r.WorkspaceID, r.ConnectionID, RevokeRetryActor)
		switch {
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		case err != nil:
			s.log.WarnContext(ctx, "revocation retry failed", "connection", r.ConnectionID, "err", err)
		case c.Status == store.StatusDisconnected:
			finished++
		}
	}
	return finished, nil
}

// disconnect is DELETE /v1/connections/{id}. An OAuth connection
// goes revoke_pending at once (its token is no longer served: 410) and is revoked at the
// provider (RFC 7009); on success its ciphertext is deleted, on 503 or a timeout the retry
// job tries again with backoff, and where the provider cannot revoke, the sealed
// credential stays unusable until AUTHPIPE_RETENTION ends (purge). An API key cannot be
// revoked: it is kept sealed until then.
func (s *Server) disconnect(c *gin.Context) {
	ctx := c.Request.Context()
	p := principal(c)
	id := c.Param("id")
	conn, err := s.store.Connection(ctx, p.WorkspaceID, id)
	if err != nil {
		fail(c, err)
		return
	}
	ev := audit.Event{WorkspaceID: p.WorkspaceID, Type: audit.ConnectionDisconnected, Actor: p.KeyID,
		ConnectionID: id, Outcome: audit.Success, Data: dataJSON("provider", conn.Provider)}
	changed := false
	if conn.AuthMode == string(oauthflow.AuthModeAPIKey) {
		if conn.Status != store.StatusDisconnected {
			ev.Data = dataJSON("provider", conn.Provider, "credential", "sealed_until_retention")
			changed = true
		}
		conn, err = s.store.Disconnect(ctx, p.WorkspaceID, id, false, ev)
	} else {
		conn, changed, err = s.store.BeginRevoke(ctx, p.WorkspaceID, id, ev)
		if err == nil && changed {
			var done store.Connection
			if done, err = s.revokePending(ctx, p.WorkspaceID, id, p.KeyID); err == nil {
				conn = done
			} else if !errors.Is(err, store.ErrConflict) {
				// The disconnect itself committed: the retry job takes the revocation on.
				s.log.WarnContext(ctx, "revocation: recording the attempt failed", "connection", id, "err", err)
			}
			err = nil
		}
	}
	if err != nil {
		fail(c, err)
		return
	}
	if changed {
		s.emitConnection(ctx, controlplane.EventConnectionDisconnected, conn, "")
	}
	c.JSON(http.StatusOK, viewOf(conn))
}

// handleEraseEndUser is DELETE /v1/end-users/{end_user_id} (GDPR art. 17): every
// connection of that end user in the caller's workspace is revoked at its provider where
// possible (one attempt; the erasure does not wait for a provider that is down) and
// hard-deleted now with its ciphertext and the end user's connect sessions. Each deletion
// is audited as connection.erased with the provider and the revocation's outcome, never a
// credential or the end user's id.
func (s *Server) handleEraseEndUser(c *gin.Context) {
	ctx := c.Request.Context()
	p := principal(c)
	endUser := c.Param("end_user_id")
	if !validEndUser(endUser) {
		fail(c, problem.ErrInvalidRequest.WithField("end_user_id", "1–256 printable characters"))
		return
	}
	conns, err := s.store.EndUserConnections(ctx, p.WorkspaceID, endUser)
	if err != nil {
		fail(c, err)
		return
	}
	outcome := make(map[string]revokeAttempt, len(conns))
	for _, cc := range conns {
		if cc.AuthMode == string(oauthflow.AuthModeOAuth2) {
			outcome[cc.ID] = s.revokeAtProvider(ctx, cc)
		} else {
			outcome[cc.ID] = revokeAttempt{outcome: store.NotRevocable, code: codeRevocationUnsupported}
		}
	}
	n, err := s.store.EraseEndUser(ctx, p.WorkspaceID, endUser, func(conn store.Connection) audit.Event {
		att, ok := outcome[conn.ID]
		revocation := "revoked"
		switch {
		case !ok: // created after the listing: deleted unrevoked
			att, revocation = revokeAttempt{code: codeProviderUnavailable}, "not_attempted"
		case att.outcome == store.NotRevocable:
			revocation = "not_revocable"
		case att.outcome == store.RetryLater:
			revocation = "failed"
		}
		return audit.Event{WorkspaceID: p.WorkspaceID, Type: audit.ConnectionErased, Actor: p.KeyID, ConnectionID: conn.ID,
			Outcome: audit.Success, ErrorCode: att.code, Data: dataJSON("provider", conn.Provider, "revocation", revocation)}
	})
	if err != nil {
		fail(c, err)
		return
	}
	for _, cc := range conns {
		gone := cc.Connection
		gone.Status = store.StatusDisconnected
		s.emitConnection(ctx, controlplane.EventConnectionErased, gone, "")
	}
	c.JSON(http.StatusOK, gin.H{"deleted": n})
}

// handleExportEndUser is GET /v1/end-users/{end_user_id}/export (GDPR art. 15/20): the
// end user's connections' metadata in this workspace, no secret.
func (s *Server) handleExportEndUser(c *gin.Context) {
	ctx := c.Request.Context()
	p := principal(c)
	endUser := c.Param("end_user_id")
	if !validEndUser(endUser) {
		fail(c, problem.ErrInvalidRequest.WithField("end_user_id", "1–256 printable characters"))
		return
	}
	out := []connectionView{}
	after := ""
	for {
		list, err := s.store.ListConnections(ctx, p.WorkspaceID, store.ConnectionFilter{EndUserID: endUser, After: after, Limit: 200})
		if err != nil {
			fail(c, err)
			return
		}
		for _, conn := range list {
			out = append(out, viewOf(conn))
		}
		if len(list) < 200 {
			break
		}
		after = list[len(list)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"end_user_id": endUser, "workspace_id": p.WorkspaceID,
		"exported_at": s.now().UTC(), "connections": out})
}

// handleDeleteWorkspace is DELETE /v1/workspaces/{id} (scope workspaces:write): revoke
// what can be revoked (one attempt each, within a budget), then crypto-shred the
// workspace's DEKs and delete its rows in one transaction (store.DeleteWorkspace), and
// drop its DEKs from both keyrings' caches. The workspace's audit chain goes with it; its
// final head is recorded in the default workspace's chain (workspace.deleted). The
// default workspace cannot be deleted (409 conflict).
func (s *Server) handleDeleteWorkspace(c *gin.Context) {
	ctx := c.Request.Context()
	p := principal(c)
	id := c.Param("id")
	if id == store.DefaultWorkspaceID {
		fail(c, problem.ErrConflict.WithDetail("the default workspace cannot be deleted"))
		return
	}
	if _, err := s.store.Workspace(ctx, id); err != nil {
		fail(c, err)
		return
	}
	revoked := 0
	budget, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for after := ""; budget.Err() == nil; {
		list, err := s.store.ListConnections(ctx, id, store.ConnectionFilter{After: after, Limit: 100})
		if err != nil {
			fail(c, err)
			return
		}
		for _, conn := range list {
			if conn.AuthMode != string(oauthflow.AuthModeOAuth2) || conn.Status == store.StatusDisconnected || budget.Err() != nil {
				continue
			}
			cc, err := s.store.ConnectionWithCredential(ctx, id, conn.ID)
			if err == nil && s.revokeAtProvider(budget, cc).outcome == store.Revoked && cc.Credential != nil {
				revoked++
			}
		}
		if len(list) < 100 {
			break
		}
		after = list[len(list)-1].ID
	}
	del, err := s.store.DeleteWorkspace(ctx, id, p.KeyID)
	if err != nil {
		fail(c, err)
		return
	}
	s.creds.Forget(id)
	s.secret.Forget(id)
	s.log.InfoContext(ctx, "workspace deleted", "workspace", id, "connections", del.Connections, "revoked", revoked,
		"deks_destroyed", del.DEKs, "final_audit_seq", del.FinalHead.Seq)
	c.Status(http.StatusNoContent)
}

// refusedRead reports the token-read refusals recorded in the audit chain: reads of a
// connection that exists but whose credential could not be served. (A successful read is
// recorded by handleToken before the credential leaves; an unknown id is not recorded.)
func refusedRead(code string) bool {
	switch code {
	case problem.ErrDisconnected.Code, problem.ErrNeedsReauth.Code, problem.ErrRefreshUnavailable.Code,
		problem.ErrKMSUnavailable.Code:
		return true
	}
	return false
}

// auditRefusedRead runs after the token handler: a refused read of a connection is
// appended to the chain as token.read with outcome failure and the problem code, through
// the batched writer (best effort: the request has already failed closed).
func (s *Server) auditRefusedRead(c *gin.Context) {
	c.Next()
	if len(c.Errors) == 0 {
		return
	}
	code := toProblem(c.Errors.Last().Err).Code
	if !refusedRead(code) {
		return
	}
	p := principal(c)
	if err := s.audit.Enqueue(audit.Event{WorkspaceID: p.WorkspaceID, At: s.now(), Type: audit.TokenRead, Actor: p.KeyID,
		ConnectionID: c.Param("id"), Outcome: audit.Failure, ErrorCode: code}); err != nil {
		s.log.WarnContext(c.Request.Context(), "audit: refused token read not recorded", "connection", c.Param("id"), "err", err)
	}
}

// handleCheckpointKeys is GET /v1/audit/checkpoint-keys: the public keys that sign audit
// checkpoints, so that a checkpoint file can be checked offline against a pinned key id.
func (s *Server) handleCheckpointKeys(c *gin.Context) {
	pub, err := s.CheckpointKeys().Published(c.Request.Context())
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

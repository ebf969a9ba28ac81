package proxy

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/dpop"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// ---- API keys ----

type apiKeyView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Prefix    string    `json:"prefix"`
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	// HashKeyID is the kid of the key that hashed it; HashKeyStale is true when that is no
	// longer the active hashing key (the key keeps working; replace it to retire the old
	// hashing key).
	HashKeyID    string `json:"hash_key_id"`
	HashKeyStale bool   `json:"hash_key_stale"`
}

type createdKey struct {
	ID     string       `json:"id"`
	Key    vault.Secret `json:"-"`
	Prefix string       `json:"prefix"`
	Scopes []string     `json:"scopes"`
	Name   string       `json:"name,omitempty"`
}

// MarshalJSON shows the key: this is the one response that must (API.md).
func (k createdKey) MarshalJSON() ([]byte, error) {
	type shown struct {
		ID     string   `json:"id"`
		Key    string   `json:"key"`
		Prefix string   `json:"prefix"`
		Scopes []string `json:"scopes"`
		Name   string   `json:"name,omitempty"`
	}
	return jsonMarshal(shown{k.ID, k.Key.Reveal(), k.Prefix, k.Scopes, k.Name})
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$`)

func validScopes(scopes []string, allowWorkspaces bool) error {
	if len(scopes) == 0 {
		return problem.ErrInvalidRequest.WithField("scopes", "at least one scope is required")
	}
	for _, s := range scopes {
		if !slices.Contains(AllScopes, s) {
			return problem.ErrInvalidRequest.WithField("scopes", "unknown scope "+strconv.Quote(s))
		}
		if s == ScopeWorkspacesWrite && !allowWorkspaces {
			return problem.ErrForbidden.WithDetail("only a key with workspaces:write can grant it")
		}
	}
	return nil
}

// CreateAPIKey makes a key in a workspace and returns it: the only time it is shown.
func (s *Server) CreateAPIKey(ctx context.Context, workspaceID, name string, scopes []string, actor string) (createdKey, error) {
	return s.createAPIKey(ctx, workspaceID, name, scopes, actor, "")
}

// createAPIKey makes a key, bound to the DPoP key with thumbprint jkt when jkt is set.
func (s *Server) createAPIKey(ctx context.Context, workspaceID, name string, scopes []string, actor, jkt string) (createdKey, error) {
	key := NewAPIKey()
	h, kid, err := s.hasher.Hash(ctx, key)
	if err != nil {
		return createdKey{}, err
	}
	row := store.APIKey{ID: ids.New(ids.APIKey), WorkspaceID: workspaceID, Name: name, Prefix: KeyDisplayPrefix(key),
		Hash: h, HashKeyID: kid, Scopes: slices.Compact(slices.Sorted(slices.Values(scopes))), CreatedAt: s.now().UTC()}
	ev := audit.Event{WorkspaceID: workspaceID, Type: audit.APIKeyCreated, Actor: actor, Outcome: audit.Success,
		Data: dataJSON("api_key_id", row.ID)}
	insert := func() error { return s.store.InsertAPIKey(ctx, row, ev) }
	if jkt != "" {
		insert = func() error { return s.store.InsertDPoPAPIKey(ctx, row, jkt, ev) }
	}
	if err := insert(); err != nil {
		return createdKey{}, err
	}
	return createdKey{ID: row.ID, Key: key, Prefix: row.Prefix, Scopes: row.Scopes, Name: name}, nil
}

// EnsureBootstrapKey makes sure key exists in the default workspace with the scopes
// admin and workspaces:write. It never logs or returns the key.
func (s *Server) EnsureBootstrapKey(ctx context.Context, key vault.Secret) error {
	if !ValidKeyFormat(key.Reveal()) {
		return errors.New("the bootstrap key is not of the form ap_<at least 32 url-safe characters>")
	}
	h, kid, err := s.hasher.Hash(ctx, key)
	if err != nil {
		return err
	}
	row := store.APIKey{ID: ids.New(ids.APIKey), WorkspaceID: store.DefaultWorkspaceID, Name: "bootstrap",
		Prefix: KeyDisplayPrefix(key), Hash: h, HashKeyID: kid,
		Scopes: store.Strings{ScopeAdmin, ScopeWorkspacesWrite}, CreatedAt: s.now().UTC()}
	ev := audit.Event{WorkspaceID: store.DefaultWorkspaceID, Type: audit.APIKeyCreated, Actor: "bootstrap",
		Outcome: audit.Success, Data: dataJSON("api_key_id", row.ID)}
	_, err = s.store.EnsureAPIKey(ctx, row, ev)
	return err
}

func (s *Server) handleCreateAPIKey(c *gin.Context) {
	var req struct {
		Name    string   `json:"name"`
		Scopes  []string `json:"scopes"`
		DPoPJKT string   `json:"dpop_jkt"` // RFC 9449: bind the key to this JWK thumbprint
	}
	if !bindJSON(c, &req) {
		return
	}
	p := principal(c)
	if !namePattern.MatchString(req.Name) {
		fail(c, problem.ErrInvalidRequest.WithField("name", "1–63 letters, digits, spaces, dots, dashes or underscores"))
		return
	}
	if err := validScopes(req.Scopes, p.Has(ScopeWorkspacesWrite)); err != nil {
		fail(c, err)
		return
	}
	if req.DPoPJKT != "" && !dpop.ValidJKT(req.DPoPJKT) {
		fail(c, problem.ErrInvalidRequest.WithField("dpop_jkt", "an RFC 7638 SHA-256 JWK thumbprint, base64url"))
		return
	}
	k, err := s.createAPIKey(c.Request.Context(), p.WorkspaceID, req.Name, req.Scopes, p.KeyID, req.DPoPJKT)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, k)
}

func (s *Server) handleListAPIKeys(c *gin.Context) {
	keys, err := s.store.ListAPIKeys(c.Request.Context(), principal(c).WorkspaceID)
	if err != nil {
		fail(c, err)
		return
	}
	active, err := s.hasher.keys.active(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]apiKeyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, apiKeyView{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes, CreatedAt: k.CreatedAt.UTC(),
			HashKeyID: k.HashKeyID, HashKeyStale: k.HashKeyID != active.kid})
	}
	c.JSON(http.StatusOK, gin.H{"api_keys": out})
}

// RevokeAPIKey revokes a key of a workspace.
func (s *Server) RevokeAPIKey(ctx context.Context, workspaceID, id, actor string) error {
	ev := audit.Event{WorkspaceID: workspaceID, Type: audit.APIKeyRevoked, Actor: actor, Outcome: audit.Success,
		Data: dataJSON("api_key_id", id)}
	if err := s.store.RevokeAPIKey(ctx, workspaceID, id, ev); err != nil {
		return err
	}
	s.auth.forget()
	return nil
}

func (s *Server) handleRevokeAPIKey(c *gin.Context) {
	p := principal(c)
	if err := s.RevokeAPIKey(c.Request.Context(), p.WorkspaceID, c.Param("id"), p.KeyID); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// ---- Workspaces ----

var workspaceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

type workspaceView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// AuditRetention is the workspace's own audit retention ("" = AUTHPIPE_AUDIT_RETENTION).
	AuditRetention string      `json:"audit_retention,omitempty"`
	APIKey         *createdKey `json:"api_key,omitempty"`
}

func workspaceViewOf(w store.Workspace) workspaceView {
	v := workspaceView{ID: w.ID, Name: w.Name, CreatedAt: w.CreatedAt.UTC()}
	if w.AuditRetentionSeconds != nil {
		v.AuditRetention = (time.Duration(*w.AuditRetentionSeconds) * time.Second).String()
	}
	return v
}

// handlePatchWorkspace is PATCH /v1/workspaces/{id}: today one setting, the workspace's
// own audit retention ({"audit_retention":"720h"}, or null for the deployment's).
func (s *Server) handlePatchWorkspace(c *gin.Context) {
	var req struct {
		AuditRetention *string `json:"audit_retention"`
	}
	if !bindJSON(c, &req) {
		return
	}
	var d *time.Duration
	if req.AuditRetention != nil {
		v, err := time.ParseDuration(*req.AuditRetention)
		if err != nil || v < store.MinAuditRetention || v > store.MaxAuditRetention {
			fail(c, problem.ErrInvalidRequest.WithField("audit_retention", "a duration from 24h to 87600h, or null"))
			return
		}
		d = &v
	}
	id := c.Param("id")
	ev := audit.Event{WorkspaceID: id, Type: audit.WorkspaceUpdated, Actor: principal(c).KeyID, Outcome: audit.Success,
		Data: dataJSON("setting", "audit_retention")}
	ws, err := s.store.SetAuditRetention(c.Request.Context(), id, d, ev)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, workspaceViewOf(ws))
}

// CreateWorkspace makes a workspace with its own DEKs (both purposes, wrapped now, so a
// KMS outage fails it with nothing written) and a first admin key, shown once.
func (s *Server) CreateWorkspace(ctx context.Context, name, actor string) (workspaceView, error) {
	if !workspaceName.MatchString(name) {
		return workspaceView{}, problem.ErrInvalidRequest.WithField("name", "1–63 lower-case letters, digits, dashes or underscores")
	}
	ws := store.Workspace{ID: ids.New(ids.Workspace), Name: name, CreatedAt: s.now().UTC()}
	credDEK, err := s.creds.GenerateDEK(ctx, ws.ID)
	if err != nil {
		return workspaceView{}, err
	}
	secDEK, err := s.secret.GenerateDEK(ctx, ws.ID)
	if err != nil {
		s.creds.Forget(ws.ID)
		return workspaceView{}, err
	}
	key := NewAPIKey()
	h, kid, err := s.hasher.Hash(ctx, key)
	if err != nil {
		return workspaceView{}, err
	}
	row := store.APIKey{ID: ids.New(ids.APIKey), WorkspaceID: ws.ID, Name: "admin", Prefix: KeyDisplayPrefix(key),
		Hash: h, HashKeyID: kid, Scopes: store.Strings{ScopeAdmin}, CreatedAt: ws.CreatedAt}
	evs := []audit.Event{
		{WorkspaceID: ws.ID, Type: audit.WorkspaceCreated, Actor: actor, Outcome: audit.Success},
		{WorkspaceID: ws.ID, Type: audit.APIKeyCreated, Actor: actor, Outcome: audit.Success, Data: dataJSON("api_key_id", row.ID)},
	}
	if err := s.store.CreateWorkspace(ctx, ws, []vault.DEKRecord{credDEK, secDEK}, row, evs...); err != nil {
		s.creds.Forget(ws.ID)
		s.secret.Forget(ws.ID)
		if errors.Is(err, store.ErrConflict) {
			return workspaceView{}, problem.ErrConflict.WithDetail("a workspace with this name exists")
		}
		return workspaceView{}, err
	}
	return workspaceView{ID: ws.ID, Name: ws.Name, CreatedAt: ws.CreatedAt,
		APIKey: &createdKey{ID: row.ID, Key: key, Prefix: row.Prefix, Scopes: row.Scopes}}, nil
}

func (s *Server) handleCreateWorkspace(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
	}
	if !bindJSON(c, &req) {
		return
	}
	ws, err := s.CreateWorkspace(c.Request.Context(), req.Name, principal(c).KeyID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, ws)
}

func (s *Server) handleListWorkspaces(c *gin.Context) {
	list, err := s.store.ListWorkspaces(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]workspaceView, 0, len(list))
	for _, w := range list {
		out = append(out, workspaceViewOf(w))
	}
	c.JSON(http.StatusOK, gin.H{"workspaces": out})
}

// ---- Audit ----

type eventView struct {
	ID           string    `json:"id"`
	At           time.Time `json:"at"`
	Type         string    `json:"type"`
	Actor        string    `json:"actor"`
	ConnectionID string    `json:"connection_id,omitempty"`
	Outcome      string    `json:"outcome"`
	ErrorCode    string    `json:"error_code,omitempty"`
	Hash         string    `json:"hash"`
	PrevHash     string    `json:"prev_hash"`
}

func (s *Server) handleListAudit(c *gin.Context) {
	limit := 100
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fail(c, problem.ErrInvalidRequest.WithField("limit", "a whole number from 1 to 1000"))
			return
		}
		limit = n
	}
	evs, err := s.store.ListAudit(c.Request.Context(), principal(c).WorkspaceID, c.Query("after"), limit)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = problem.ErrInvalidRequest.WithField("after", "no such event in this workspace")
		}
		fail(c, err)
		return
	}
	out := make([]eventView, 0, len(evs))
	for _, e := range evs {
		out = append(out, eventView{ID: e.ID, At: e.At.UTC(), Type: e.Type, Actor: e.Actor, ConnectionID: e.ConnectionID,
			Outcome: e.Outcome, ErrorCode: e.ErrorCode, Hash: e.Hash, PrevHash: e.PrevHash})
	}
	c.JSON(http.StatusOK, gin.H{"events": out})
}

func (s *Server) handleVerifyAudit(c *gin.Context) {
	res, err := s.store.VerifyAudit(c.Request.Context(), principal(c).WorkspaceID)
	if err != nil {
		fail(c, err)
		return
	}
	if !res.OK {
		s.log.Error("audit chain broken", "workspace", principal(c).WorkspaceID, "first_bad_event", res.FirstBadEvent)
		if s.metrics != nil {
			s.metrics.AuditChainBroken()
		}
		c.JSON(http.StatusOK, gin.H{"ok": false, "first_bad_event": res.FirstBadEvent})
		return
	}
	c.JSON(http.StatusOK, gin.H{"ok": true, "events": res.Events, "head": res.Head})
}

// ---- Operations ----

func (s *Server) handleHealthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

func (s *Server) handleReadyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	checks := gin.H{"startup": "ok", "database": "ok", "kms": "ok", "audit": "ok"}
	ok := true
	if !s.ready.Load() {
		checks["startup"], ok = "pending", false
	}
	if err := s.store.Ping(ctx); err != nil {
		checks["database"], ok = "unavailable", false
	}
	if err := errors.Join(s.creds.Ping(ctx), s.secret.Ping(ctx)); err != nil {
		checks["kms"], ok = "unavailable", false
	}
	if !s.audit.Healthy() {
		checks["audit"], ok = "unavailable", false
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, gin.H{"ready": ok, "checks": checks})
}

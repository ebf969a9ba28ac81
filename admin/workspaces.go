package admin

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// DefaultWorkspaceID is the workspace every deployment has (the bootstrap key's).
const DefaultWorkspaceID = store.DefaultWorkspaceID

var workspaceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Workspace is a workspace as the API shows it.
type Workspace struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// AuditRetention is the workspace's own audit retention ("" = AUTHPIPE_AUDIT_RETENTION).
	AuditRetention string `json:"audit_retention,omitempty"`
	// FrozenAt is when the workspace was frozen (incident response); absent when it is not.
	FrozenAt *time.Time `json:"frozen_at,omitempty"`
	// APIKey is the first admin key of a workspace just created, shown once.
	APIKey *CreatedKey `json:"api_key,omitempty"`
}

func workspaceOf(w store.Workspace) Workspace {
	v := Workspace{ID: w.ID, Name: w.Name, CreatedAt: w.CreatedAt.UTC()}
	if w.AuditRetentionSeconds != nil {
		v.AuditRetention = (time.Duration(*w.AuditRetentionSeconds) * time.Second).String()
	}
	v.FrozenAt = UTC(w.FrozenAt)
	return v
}

// CreateWorkspace makes a workspace with its own DEKs (both purposes, wrapped now, so a
// KMS outage fails it with nothing written) and a first admin key, shown once; audited
// workspace.created and api_key.created in its own chain.
func (s *Service) CreateWorkspace(ctx context.Context, name, actor string) (Workspace, error) {
	if !workspaceName.MatchString(name) {
		return Workspace{}, problem.ErrInvalidRequest.WithField("name", "1–63 lower-case letters, digits, dashes or underscores")
	}
	ws := store.Workspace{ID: ids.New(ids.Workspace), Name: name, CreatedAt: s.now().UTC()}
	credDEK, err := s.creds.GenerateDEK(ctx, ws.ID)
	if err != nil {
		return Workspace{}, err
	}
	secDEK, err := s.secrets.GenerateDEK(ctx, ws.ID)
	if err != nil {
		s.creds.Forget(ws.ID)
		return Workspace{}, err
	}
	key := NewAPIKey()
	h, kid, err := s.hasher.Hash(ctx, key)
	if err != nil {
		return Workspace{}, err
	}
	row := store.APIKey{ID: ids.New(ids.APIKey), WorkspaceID: ws.ID, Name: "admin", Prefix: KeyDisplayPrefix(key),
		Hash: h, HashKeyID: kid, Scopes: store.Strings{ScopeAdmin}, CreatedAt: ws.CreatedAt}
	evs := []audit.Event{
		{WorkspaceID: ws.ID, Type: audit.WorkspaceCreated, Actor: actor, Outcome: audit.Success},
		apiKeyCreated(ws.ID, actor, row.ID),
	}
	if err := s.store.CreateWorkspace(ctx, ws, []vault.DEKRecord{credDEK, secDEK}, row, evs...); err != nil {
		s.creds.Forget(ws.ID)
		s.secrets.Forget(ws.ID)
		if errors.Is(err, store.ErrConflict) {
			return Workspace{}, problem.ErrConflict.WithDetail("a workspace with this name exists")
		}
		return Workspace{}, err
	}
	return Workspace{ID: ws.ID, Name: ws.Name, CreatedAt: ws.CreatedAt,
		APIKey: &CreatedKey{ID: row.ID, Key: key, Prefix: row.Prefix, Scopes: row.Scopes}}, nil
}

// ListWorkspaces lists the deployment's workspaces.
func (s *Service) ListWorkspaces(ctx context.Context) ([]Workspace, error) {
	list, err := s.store.ListWorkspaces(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Workspace, 0, len(list))
	for _, w := range list {
		out = append(out, workspaceOf(w))
	}
	return out, nil
}

// ErrInvalidRetention refuses an audit retention outside [24h, 87600h].
var ErrInvalidRetention = problem.ErrInvalidRequest.WithField("audit_retention", "a duration from 24h to 87600h, or null")

// SetAuditRetention sets a workspace's own audit retention, overriding
// AUTHPIPE_AUDIT_RETENTION (nil removes the override); audited workspace.updated.
func (s *Service) SetAuditRetention(ctx context.Context, workspaceID string, d *time.Duration, actor string) (Workspace, error) {
	if d != nil && (*d < store.MinAuditRetention || *d > store.MaxAuditRetention) {
		return Workspace{}, ErrInvalidRetention
	}
	ev := audit.Event{WorkspaceID: workspaceID, Type: audit.WorkspaceUpdated, Actor: actor, Outcome: audit.Success,
		Data: audit.Data("setting", "audit_retention")}
	ws, err := s.store.SetAuditRetention(ctx, workspaceID, d, ev)
	if err != nil {
		return Workspace{}, err
	}
	return workspaceOf(ws), nil
}

// FreezeWorkspace freezes (frozen) or unfreezes a workspace: while it is frozen its token
// reads and forwarded requests answer 423 workspace_frozen (refresher.Tokens.Usable), while
// refreshes, revocations and the audit go on. Audited workspace.frozen or
// workspace.unfrozen in the workspace's own chain, in the same transaction.
func (s *Service) FreezeWorkspace(ctx context.Context, workspaceID string, frozen bool, actor string) (Workspace, error) {
	typ := audit.WorkspaceUnfrozen
	if frozen {
		typ = audit.WorkspaceFrozen
	}
	ws, err := s.store.SetWorkspaceFrozen(ctx, workspaceID, frozen,
		audit.Event{WorkspaceID: workspaceID, Type: typ, Actor: actor, Outcome: audit.Success})
	if err != nil {
		return Workspace{}, err
	}
	return workspaceOf(ws), nil
}

// WorkspaceRevoker revokes at the providers the grants a workspace's connections hold
// (refresher.Revocations satisfies it).
type WorkspaceRevoker interface {
	RevokeWorkspace(ctx context.Context, workspaceID string, budget time.Duration) (int, error)
}

// workspaceRevokeBudget bounds the revocations made before a workspace is deleted.
const workspaceRevokeBudget = 60 * time.Second

// WorkspaceDeletion is what deleting a workspace did.
type WorkspaceDeletion struct {
	store.WorkspaceDeletion
	Revoked int // grants revoked at their providers
}

// DeleteWorkspace erases a workspace: revoke what can be revoked (one attempt each,
// within a budget), then crypto-shred its DEKs and delete its rows in one transaction,
// and drop its DEKs from both keyrings' caches. The workspace's audit chain goes with it;
// its final head is recorded in the default workspace's chain (workspace.deleted). The
// default workspace cannot be deleted (409 conflict); an unknown one is 404.
func (s *Service) DeleteWorkspace(ctx context.Context, id, actor string) (WorkspaceDeletion, error) {
	if id == DefaultWorkspaceID {
		return WorkspaceDeletion{}, problem.ErrConflict.WithDetail("the default workspace cannot be deleted")
	}
	if _, err := s.store.Workspace(ctx, id); err != nil {
		return WorkspaceDeletion{}, err
	}
	if s.revoker == nil {
		return WorkspaceDeletion{}, errors.New("admin: no revocation service to delete a workspace with")
	}
	revoked, err := s.revoker.RevokeWorkspace(ctx, id, workspaceRevokeBudget)
	if err != nil {
		return WorkspaceDeletion{}, err
	}
	del, err := s.store.DeleteWorkspace(ctx, id, actor)
	if err != nil {
		return WorkspaceDeletion{}, err
	}
	s.creds.Forget(id)
	s.secrets.Forget(id)
	return WorkspaceDeletion{WorkspaceDeletion: del, Revoked: revoked}, nil
}

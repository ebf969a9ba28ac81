package admin

import (
	"context"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// APIKeyStore keeps API keys.
type APIKeyStore interface {
	APIKeysByHashes(ctx context.Context, hashes [][]byte) ([]store.APIKey, error)
	InsertAPIKey(ctx context.Context, k store.APIKey, evs ...audit.Event) error
	InsertDPoPAPIKey(ctx context.Context, k store.APIKey, jkt string, evs ...audit.Event) error
	EnsureAPIKey(ctx context.Context, k store.APIKey, evs ...audit.Event) (bool, error)
	ListAPIKeys(ctx context.Context, workspaceID string) ([]store.APIKey, error)
	RevokeAPIKey(ctx context.Context, workspaceID, id string, evs ...audit.Event) error
}

// WorkspaceStore keeps workspaces.
type WorkspaceStore interface {
	CreateWorkspace(ctx context.Context, ws store.Workspace, deks []vault.DEKRecord, key store.APIKey, evs ...audit.Event) error
	ListWorkspaces(ctx context.Context) ([]store.Workspace, error)
	SetAuditRetention(ctx context.Context, workspaceID string, retention *time.Duration, evs ...audit.Event) (store.Workspace, error)
	Workspace(ctx context.Context, id string) (store.Workspace, error)
	SetWorkspaceFrozen(ctx context.Context, workspaceID string, frozen bool, evs ...audit.Event) (store.Workspace, error)
	DeleteWorkspace(ctx context.Context, workspaceID, actor string) (store.WorkspaceDeletion, error)
}

// KeySetStore keeps the proxy's own keys (proxy_keys).
type KeySetStore interface {
	ProxyKeys(ctx context.Context, purpose string) ([]store.ProxyKey, error)
	AllProxyKeys(ctx context.Context, purpose string) ([]store.ProxyKey, error)
	InsertProxyKeyIfAbsent(ctx context.Context, k store.ProxyKey) (store.ProxyKey, error)
	RotateProxyKey(ctx context.Context, next store.ProxyKey, retireAfter *time.Time, evs ...audit.Event) ([]string, error)
	RetireExpiredProxyKeys(ctx context.Context, purpose string, now time.Time) (int64, error)
	RetireUnusedHashKeys(ctx context.Context, purpose string) (int64, error)
}

// WebhookStore keeps a workspace's webhook endpoint.
type WebhookStore interface {
	PutWebhookEndpoint(ctx context.Context, ep store.WebhookEndpoint, evs ...audit.Event) error
	WebhookEndpointOf(ctx context.Context, workspaceID string) (store.WebhookEndpoint, error)
	RotateWebhookSecret(ctx context.Context, workspaceID string, sealed []byte, retireAfter time.Time, evs ...audit.Event) error
	DeleteWebhookEndpoint(ctx context.Context, workspaceID string, evs ...audit.Event) error
}

// KEKStore is what a KEK rotation reads and writes.
type KEKStore interface {
	vault.RewrapStore
	CountDEKsByKEK(ctx context.Context) (map[string]int64, error)
}

// AuditStore reads and verifies the audit chains.
type AuditStore interface {
	RecordAuditVerified(ctx context.Context, cp audit.Checkpoint) error
	ClaimAuditVerification(ctx context.Context, workspaceID, owner string, until time.Time) (bool, error)
	ReleaseAuditVerification(ctx context.Context, workspaceID, owner string) error
	ListAudit(ctx context.Context, workspaceID, afterID string, limit int) ([]audit.Event, error)
	AuditWorkspaces(ctx context.Context) ([]string, error)
	VerifyAuditChain(ctx context.Context, workspaceID string, sc store.VerifyScope) (store.AuditResult, error)
	VerifyAuditCheckpoints(ctx context.Context, workspaceID string, cps []audit.Checkpoint, trusted ...string) (store.AuditResult, error)
	AuditExport(ctx context.Context, workspaceID string,
		begin func(start store.ChainHead, startCheckpoint string, head store.ChainHead) error, fn func(audit.Event) error) error
}

// Store is everything the service keeps.
type Store interface {
	APIKeyStore
	WorkspaceStore
	KeySetStore
	WebhookStore
	KEKStore
	AuditStore
	EndUserStore
}

var _ Store = (*store.Store)(nil)

package admin

// End users: the id rule creation applies, a connection's metadata as the API and the
// CLI show it, and the GDPR export of one end user (art. 15/20). Erasure revokes at the
// providers and lives with revocation (refresher.Revocations.EraseEndUser).

import (
	"context"
	"time"
	"unicode/utf8"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// EndUserStore lists an end user's connections.
type EndUserStore interface {
	ListConnections(ctx context.Context, workspaceID string, f store.ConnectionFilter) ([]store.Connection, error)
}

// ValidEndUserID reports whether id is an end user id creation accepts: 1–256 bytes of
// printable UTF-8 (no control character). In a path it is one percent-encoded segment.
func ValidEndUserID(id string) bool {
	if id == "" || len(id) > 256 || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// ErrInvalidEndUserID is the refusal of an id ValidEndUserID rejects.
var ErrInvalidEndUserID = problem.ErrInvalidRequest.WithField("end_user_id", "1–256 printable characters")

// ConnectionView is a connection's metadata as the API and the CLI show it (API.md
// Connections): no secret, revoke_pending shown as disconnected.
type ConnectionView struct {
	ID               string   `json:"id"`
	Provider         string   `json:"provider"`
	EndUserID        string   `json:"end_user_id"`
	AuthMode         string   `json:"auth_mode"`
	Status           string   `json:"status"`
	Reason           string   `json:"reason,omitempty"` // why it is needs_reauth or error, when recorded
	Scopes           []string `json:"scopes"`
	CredentialPrefix string   `json:"credential_prefix"`
	// WebhookSecretPrefix masks the provider webhook signing secret (package inbound).
	WebhookSecretPrefix string `json:"webhook_secret_prefix,omitempty"`
	// ConnectionConfig are the values filled into the provider's URL placeholders,
	// Metadata the token-response fields kept (instance_url): never a secret.
	ConnectionConfig map[string]string `json:"connection_config"`
	Metadata         map[string]string `json:"metadata"`
	ExpiresAt        *time.Time        `json:"expires_at"`
	LastRefreshedAt  *time.Time        `json:"last_refreshed_at"`
	// RefreshTokenExpiresAt is when the refresh token stops working, when known.
	RefreshTokenExpiresAt *time.Time `json:"refresh_token_expires_at,omitempty"`
	// ExternalID is an imported connection's id in the system it came from.
	ExternalID string    `json:"external_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// UTC is t in UTC (nil stays nil).
func UTC(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// ViewOf is c as the API shows it.
func ViewOf(c store.Connection) ConnectionView {
	status := store.PublicStatus(c.Status)
	scopes := []string(c.Scopes)
	if scopes == nil {
		scopes = []string{}
	}
	reason := ""
	if status == store.StatusNeedsReauth || status == store.StatusError {
		reason = c.StatusReason
	}
	v := ConnectionView{ID: c.ID, Provider: c.Provider, EndUserID: c.EndUserID, AuthMode: c.AuthMode, Status: status,
		Reason: reason, Scopes: scopes, CredentialPrefix: c.CredentialPrefix, WebhookSecretPrefix: c.WebhookSecretPrefix,
		ConnectionConfig: orEmpty(store.ParseJSONObject(c.ConnectionConfig)), Metadata: orEmpty(store.ParseJSONObject(c.Metadata)),
		ExpiresAt: UTC(c.ExpiresAt), LastRefreshedAt: UTC(c.LastRefreshedAt), RefreshTokenExpiresAt: UTC(c.RefreshTokenExpiresAt),
		CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC()}
	if c.ExternalID != nil {
		v.ExternalID = *c.ExternalID
	}
	return v
}

// EndUserExport is everything held about one end user of a workspace: their connections'
// metadata, no secret.
type EndUserExport struct {
	EndUserID   string           `json:"end_user_id"`
	WorkspaceID string           `json:"workspace_id"`
	ExportedAt  time.Time        `json:"exported_at"`
	Connections []ConnectionView `json:"connections"`
}

// ExportEndUser exports what the workspace holds about endUser (GDPR art. 15/20).
func (s *Service) ExportEndUser(ctx context.Context, workspaceID, endUser string) (EndUserExport, error) {
	if !ValidEndUserID(endUser) {
		return EndUserExport{}, ErrInvalidEndUserID
	}
	out := EndUserExport{EndUserID: endUser, WorkspaceID: workspaceID, ExportedAt: s.now().UTC(), Connections: []ConnectionView{}}
	for after := ""; ; {
		list, err := s.store.ListConnections(ctx, workspaceID, store.ConnectionFilter{EndUserID: endUser, After: after, Limit: 200})
		if err != nil {
			return EndUserExport{}, err
		}
		for _, c := range list {
			out.Connections = append(out.Connections, ViewOf(c))
		}
		if len(list) < 200 {
			return out, nil
		}
		after = list[len(list)-1].ID
	}
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

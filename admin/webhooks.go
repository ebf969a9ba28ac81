package admin

import (
	"context"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/webhooksig"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// PutWebhook sets a workspace's webhook URL (checked by the caller) with a new signing
// secret, sealed under the credentials keyring, audited webhook.updated. The secret is
// returned to be shown once.
func (s *Service) PutWebhook(ctx context.Context, workspaceID, url, actor string) (vault.Secret, error) {
	secret, err := webhooksig.NewSecret()
	if err != nil {
		return vault.Secret{}, err
	}
	sealed, err := s.creds.Seal(ctx, vault.WebhookSecretBinding(workspaceID), secret)
	if err != nil {
		return vault.Secret{}, err
	}
	now := s.now().UTC()
	ev := audit.Event{WorkspaceID: workspaceID, Type: "webhook.updated", Actor: actor, Outcome: audit.Success}
	if err := s.store.PutWebhookEndpoint(ctx, store.WebhookEndpoint{WorkspaceID: workspaceID, URL: url, Secret: sealed,
		CreatedAt: now, UpdatedAt: now}, ev); err != nil {
		return vault.Secret{}, err
	}
	return secret, nil
}

// DeleteWebhook removes a workspace's webhook endpoint, audited webhook.deleted.
func (s *Service) DeleteWebhook(ctx context.Context, workspaceID, actor string) error {
	ev := audit.Event{WorkspaceID: workspaceID, Type: "webhook.deleted", Actor: actor, Outcome: audit.Success}
	return s.store.DeleteWebhookEndpoint(ctx, workspaceID, ev)
}

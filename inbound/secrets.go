package inbound

import (
	"context"
	"errors"
	"strconv"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// MaxSecretLen bounds a webhook signing secret (providers issue 32 to 80 characters).
const MaxSecretLen = 1024

// PrefixLen is how many characters of a secret its views show.
const PrefixLen = 4

// SecretView is an owner's webhook signing secrets as the API shows them: prefixes only.
type SecretView struct {
	ConnectionID         string `json:"connection_id,omitempty"`
	Provider             string `json:"provider,omitempty"`
	WebhookSecretPrefix  string `json:"webhook_secret_prefix"`
	PreviousSecretPrefix string `json:"previous_webhook_secret_prefix,omitempty"`
}

// CheckSecret validates a webhook signing secret from a request: 1 to MaxSecretLen bytes.
func CheckSecret(field string, sec vault.Secret) error {
	if sec.IsZero() || sec.Len() > MaxSecretLen {
		return problem.ErrInvalidRequest.WithField(field, "required, at most "+strconv.Itoa(MaxSecretLen)+" bytes")
	}
	return nil
}

// SealConnectionSecret seals a new connection's webhook signing secret (before the
// connection is stored, so that a KMS failure writes nothing): the row to store with it
// (store.CreateConnectionWithWebhookSecret).
func (s *Service) SealConnectionSecret(ctx context.Context, workspaceID, connID string, sec vault.Secret) (store.WebhookSigningSecret, error) {
	if err := CheckSecret("webhook_secret", sec); err != nil {
		return store.WebhookSigningSecret{}, err
	}
	sealed, err := s.creds.Seal(ctx, vault.ProviderWebhookSecretBinding(workspaceID, connID), sec)
	if err != nil {
		return store.WebhookSigningSecret{}, err
	}
	return store.WebhookSigningSecret{OwnerID: connID, WorkspaceID: workspaceID, Secret: sealed,
		Prefix: sec.Prefix(PrefixLen), UpdatedAt: s.now().UTC()}, nil
}

// owner resolves the owner of a secret: a connection of the workspace (ownerKey is its
// id) or, with provider set, a provider configuration (ownerKey is its key).
func (s *Service) owner(ctx context.Context, workspaceID, ownerKey string, provider bool) (store.SecretOwner, string, SecretView, error) {
	if provider {
		e, err := s.providers.Get(ctx, workspaceID, ownerKey)
		if err != nil {
			return "", "", SecretView{}, err
		}
		return store.ProviderWebhookSecret, e.ID, SecretView{Provider: ownerKey}, nil
	}
	c, err := s.store.Connection(ctx, workspaceID, ownerKey)
	if err != nil {
		return "", "", SecretView{}, err
	}
	return store.ConnectionWebhookSecret, c.ID, SecretView{ConnectionID: c.ID, Provider: c.Provider}, nil
}

// SetSecret stores sec as the webhook signing secret of a connection (ownerKey: its id)
// or, with provider, of a provider configuration (ownerKey: its key), audited
// webhook_secret.set. keepPrevious keeps the current secret as the previous one, accepted
// too until RemoveSecret(previousOnly) — the window of a provider-side rotation.
func (s *Service) SetSecret(ctx context.Context, workspaceID, actor, ownerKey string, provider bool, sec vault.Secret, keepPrevious bool) (SecretView, error) {
	if err := CheckSecret("secret", sec); err != nil {
		return SecretView{}, err
	}
	owner, ownerID, view, err := s.owner(ctx, workspaceID, ownerKey, provider)
	if err != nil {
		return SecretView{}, err
	}
	sealed, err := s.creds.Seal(ctx, vault.ProviderWebhookSecretBinding(workspaceID, ownerID), sec)
	if err != nil {
		return SecretView{}, err
	}
	row := store.WebhookSigningSecret{OwnerID: ownerID, WorkspaceID: workspaceID, Secret: sealed, Prefix: sec.Prefix(PrefixLen),
		UpdatedAt: s.now().UTC()}
	ev := audit.Event{WorkspaceID: workspaceID, Type: EventSecretSet, Actor: actor, ConnectionID: view.ConnectionID,
		Outcome: audit.Success, Data: audit.Data("provider", view.Provider, "keep_previous", strconv.FormatBool(keepPrevious))}
	if err := s.store.PutWebhookSigningSecret(ctx, owner, row, keepPrevious, ev); err != nil {
		return SecretView{}, err
	}
	return s.view(ctx, workspaceID, owner, ownerID, view)
}

// RemoveSecret removes the previous webhook signing secret of a connection or provider
// configuration (previousOnly: the provider-side rotation is over), or both, audited
// webhook_secret.removed. Nothing to remove is 404.
func (s *Service) RemoveSecret(ctx context.Context, workspaceID, actor, ownerKey string, provider, previousOnly bool) (SecretView, error) {
	owner, ownerID, view, err := s.owner(ctx, workspaceID, ownerKey, provider)
	if err != nil {
		return SecretView{}, err
	}
	which := "both"
	if previousOnly {
		which = "previous"
	}
	ev := audit.Event{WorkspaceID: workspaceID, Type: EventSecretRemoved, Actor: actor, ConnectionID: view.ConnectionID,
		Outcome: audit.Success, Data: audit.Data("provider", view.Provider, "which", which)}
	if err := s.store.DeleteWebhookSigningSecret(ctx, owner, workspaceID, ownerID, previousOnly, ev); err != nil {
		return SecretView{}, err
	}
	return s.view(ctx, workspaceID, owner, ownerID, view)
}

// GetSecret shows an owner's secrets (prefixes only); none is 404.
func (s *Service) GetSecret(ctx context.Context, workspaceID, ownerKey string, provider bool) (SecretView, error) {
	owner, ownerID, view, err := s.owner(ctx, workspaceID, ownerKey, provider)
	if err != nil {
		return SecretView{}, err
	}
	v, err := s.view(ctx, workspaceID, owner, ownerID, view)
	if err == nil && v.WebhookSecretPrefix == "" {
		return SecretView{}, store.ErrNotFound
	}
	return v, err
}

func (s *Service) view(ctx context.Context, workspaceID string, owner store.SecretOwner, ownerID string, v SecretView) (SecretView, error) {
	row, err := s.store.WebhookSigningSecretOf(ctx, owner, workspaceID, ownerID)
	switch {
	case err == nil:
		v.WebhookSecretPrefix, v.PreviousSecretPrefix = row.Prefix, row.PrevPrefix
	case !isNotFound(err):
		return SecretView{}, err
	}
	return v, nil
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, store.ErrNotFound) }

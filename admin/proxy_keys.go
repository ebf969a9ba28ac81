package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/internal/webhooksig"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// KeyRotated is the audit event of a rotation of one of the proxy's own keys, in the
// default workspace's chain. Its data holds the purpose and the new kid, never a key.
const KeyRotated = "key.rotated"

// RotatablePurposes lists the purposes RotateProxyKey and RotateWebhookSecret accept.
var RotatablePurposes = []string{PurposeAPIKeyHash, PurposeState, PurposeWebhook, PurposeCheckpoint}

func keyRotatedEvent(purpose, kid, actor string) audit.Event {
	return audit.Event{WorkspaceID: store.DefaultWorkspaceID, Type: KeyRotated, Actor: actor, Outcome: audit.Success,
		Data: audit.Data("purpose", purpose, "kid", kid)}
}

// keySet returns the key set of a purpose, or nil.
func (s *Service) keySet(purpose string) *KeySet {
	switch purpose {
	case PurposeAPIKeyHash:
		return s.hasher.keys
	case PurposeState:
		return s.state
	case PurposeCheckpoint:
		return s.checkpoints.keys
	}
	return nil
}

// RotateProxyKey makes a new active key of purpose and moves the active one to
// verify-only, in one transaction with a key.rotated audit event. The old key retires by
// itself once nothing can still need it (state: after the flow lifetime; apikey-hash: when
// no unrevoked API key is hashed with it). The webhook purpose is per workspace:
// RotateWebhookSecret.
func (s *Service) RotateProxyKey(ctx context.Context, purpose, actor string) (ProxyKeyRotation, error) {
	ks := s.keySet(purpose)
	if ks == nil {
		return ProxyKeyRotation{}, ErrUnknownPurpose
	}
	r, err := ks.rotate(ctx, actor)
	if err != nil {
		return ProxyKeyRotation{}, err
	}
	switch purpose {
	case PurposeAPIKeyHash:
		s.auth.forget() // the cache is keyed by the active key's hash
	case PurposeCheckpoint:
		sg, err := s.checkpoints.Signer(ctx)
		if err != nil {
			return ProxyKeyRotation{}, err
		}
		r.CheckpointKID = sg.KeyID()
	}
	return r, nil
}

// WebhookRotation is the outcome of a webhook secret rotation. Secret is shown once.
type WebhookRotation struct {
	KID         string
	Secret      vault.Secret
	PreviousKID string
	RetireAfter time.Time
}

// RotateWebhookSecret gives a workspace's webhook endpoint a new signing secret. Until
// RetireAfter (the retry window, webhooksig.RetryWindow) every delivery carries a
// signature under each secret, each with its kid, so the receiver can roll its secret
// without missing an event; after it only the new secret signs. Audited key.rotated
// (purpose, kid, workspace; never the secret) in the default workspace's chain.
func (s *Service) RotateWebhookSecret(ctx context.Context, workspaceID, actor string) (WebhookRotation, error) {
	ep, err := s.store.WebhookEndpointOf(ctx, workspaceID)
	if errors.Is(err, store.ErrNotFound) {
		return WebhookRotation{}, problem.ErrNotFound.WithDetail("this workspace has no webhook endpoint")
	}
	if err != nil {
		return WebhookRotation{}, err
	}
	bind := vault.WebhookSecretBinding(workspaceID)
	old, err := s.creds.Open(ctx, bind, ep.Secret)
	if err != nil {
		return WebhookRotation{}, fmt.Errorf("admin: open the webhook secret: %w", err)
	}
	prevKID := webhooksig.KID(old.Bytes())
	old.Wipe()
	secret, err := webhooksig.NewSecret()
	if err != nil {
		return WebhookRotation{}, err
	}
	sealed, err := s.creds.Seal(ctx, bind, secret)
	if err != nil {
		return WebhookRotation{}, err
	}
	kid := webhooksig.KID(secret.Bytes())
	retire := s.now().UTC().Add(webhooksig.RetryWindow)
	ev := keyRotatedEvent(PurposeWebhook, kid, actor)
	ev.Data = audit.Data("purpose", PurposeWebhook, "kid", kid, "workspace_id", workspaceID)
	if err := s.store.RotateWebhookSecret(ctx, workspaceID, sealed, retire, ev); err != nil {
		return WebhookRotation{}, err
	}
	return WebhookRotation{KID: kid, Secret: secret, PreviousKID: prevKID, RetireAfter: retire}, nil
}

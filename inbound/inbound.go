// Package inbound owns the webhooks providers send to the proxy: their signing secrets (a
// credential like any other: sealed per workspace, bound to their owner, never shown but
// for a prefix, two during a provider-side rotation) and their reception: the signature
// checked as the provider's catalog entry declares it (internal/webhookverify), a replay
// refused through a store every replica shares, a good delivery relayed to the
// workspace's webhook endpoint through the outbox (event provider.webhook, signed with
// internal/webhooksig by the refresher's dispatcher), a bad one refused 401 and audited
// webhook.refused. The HTTP handlers (proxy/handlers_inbound.go) call this package only.
package inbound

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/internal/webhookverify"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/providers"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Audit event types of this package.
const (
	EventRefused       = "webhook.refused"
	EventReceived      = "webhook.received"
	EventSecretSet     = "webhook_secret.set"
	EventSecretRemoved = "webhook_secret.removed"
)

// Store is what the service needs of the store.
type Store interface {
	InboundConnection(ctx context.Context, id string) (store.Connection, error)
	Connection(ctx context.Context, workspaceID, id string) (store.Connection, error)
	WebhookSigningSecretOf(ctx context.Context, owner store.SecretOwner, workspaceID, ownerID string) (store.WebhookSigningSecret, error)
	PutWebhookSigningSecret(ctx context.Context, owner store.SecretOwner, sec store.WebhookSigningSecret, keepPrevious bool, evs ...audit.Event) error
	DeleteWebhookSigningSecret(ctx context.Context, owner store.SecretOwner, workspaceID, ownerID string, previousOnly bool, evs ...audit.Event) error
	RelayInboundWebhook(ctx context.Context, seen store.InboundSeen, d store.WebhookDelivery, evs ...audit.Event) error
	AppendEvents(ctx context.Context, evs ...audit.Event) error
}

// Sealer seals and opens the secrets (the credentials keyring).
type Sealer interface {
	Seal(ctx context.Context, b vault.Binding, plaintext vault.Secret) ([]byte, error)
	Open(ctx context.Context, b vault.Binding, envelope []byte) (vault.Secret, error)
}

var _ Sealer = (*vault.Keyring)(nil)

// Providers resolves a connection's provider configuration (providers.Service).
type Providers interface {
	Resolve(ctx context.Context, workspaceID, key string) (providers.Entry, bool, error)
	Get(ctx context.Context, workspaceID, key string) (providers.Entry, error)
	Catalog() *oauthflow.Catalog
}

var _ Providers = (*providers.Service)(nil)

// Service is the provider webhooks service.
type Service struct {
	store     Store
	creds     Sealer
	providers Providers
	now       func() time.Time
}

// New builds the service; now defaults to time.Now.
func New(st Store, creds Sealer, prov Providers, now func() time.Time) (*Service, error) {
	if st == nil || creds == nil || prov == nil {
		return nil, errors.New("inbound: a store, a sealer and the providers are required")
	}
	if now == nil {
		now = time.Now
	}
	return &Service{store: st, creds: creds, providers: prov, now: now}, nil
}

// Refusal is a delivery refused: the sender gets 401 invalid_signature, whatever the
// Reason (a webhookverify reason, or replay, unknown_connection, provider_mismatch,
// connection_disconnected, no_scheme, no_secret), so that it learns nothing about which
// connections exist or hold a secret.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return "inbound: webhook refused: " + r.Reason }

// Unwrap carries the problem (401 invalid_signature).
func (r *Refusal) Unwrap() error { return errInvalidSignature }

var errInvalidSignature = problem.Sentinel(problem.ErrInvalidSignature, "inbound: webhook signature invalid")

// Refusal reasons beyond webhookverify's.
const (
	ReasonReplay            = "replay"
	ReasonUnknownConnection = "unknown_connection"
	ReasonProviderMismatch  = "provider_mismatch"
	ReasonDisconnected      = "connection_disconnected"
	ReasonNoScheme          = "no_scheme"
	ReasonNoSecret          = "no_secret"
)

// Scheme is the webhook scheme of a workspace's provider key: the catalog entry's, of the
// template the configuration names or, failing that, of the key itself. A workspace cannot
// declare its own: the scheme is the provider's, not the caller's.
func (s *Service) Scheme(ctx context.Context, workspaceID, key string) (*webhookverify.Scheme, error) {
	names := []string{key}
	if e, _, err := s.providers.Resolve(ctx, workspaceID, key); err == nil && e.Template != "" {
		names = []string{e.Template, key}
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	for _, n := range names {
		if t, ok := s.providers.Catalog().Get(n); ok && t.Webhook != nil {
			return t.Webhook, nil
		}
	}
	return nil, nil
}

// Receive verifies a delivery for connection connID of provider providerKey and queues
// its relay. A refusal is a *Refusal (audited webhook.refused with the reason only, when
// the connection exists); a workspace without a webhook endpoint is
// store.ErrNoWebhookEndpoint (409: the provider retries later); other errors are the
// store's or the KMS's (fail closed: nothing is relayed).
func (s *Service) Receive(ctx context.Context, providerKey, connID string, r webhookverify.Request) error {
	conn, err := s.store.InboundConnection(ctx, connID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Refusal{Reason: ReasonUnknownConnection}
	case err != nil:
		return err
	}
	refuse := func(reason string) error {
		_ = s.store.AppendEvents(context.WithoutCancel(ctx), audit.Event{WorkspaceID: conn.WorkspaceID, Type: EventRefused,
			ConnectionID: conn.ID, Outcome: audit.Failure, ErrorCode: "invalid_signature",
			Data: audit.Data("provider", conn.Provider, "reason", reason)}) // the refusal stands if recording fails
		return &Refusal{Reason: reason}
	}
	switch {
	case conn.Provider != providerKey:
		return refuse(ReasonProviderMismatch)
	case conn.Status == store.StatusDisconnected:
		return refuse(ReasonDisconnected)
	}
	scheme, err := s.Scheme(ctx, conn.WorkspaceID, conn.Provider)
	if err != nil {
		return err
	}
	if scheme == nil {
		return refuse(ReasonNoScheme)
	}
	sets, err := s.secrets(ctx, conn)
	defer func() {
		for _, set := range sets {
			for _, sec := range set.secrets {
				sec.Wipe()
			}
		}
	}()
	if err != nil {
		return err
	}
	if len(sets) == 0 {
		return refuse(ReasonNoSecret)
	}
	// The first set whose secret verifies owns the delivery's replay record: a provider-level
	// secret is shared by every connection of the provider, so a delivery it signed is
	// remembered under the provider configuration and cannot be replayed to another of them.
	now := s.now()
	var res webhookverify.Result
	var owner string
	for _, set := range sets {
		keys := make([][]byte, len(set.secrets))
		for i, sec := range set.secrets {
			keys[i] = sec.Bytes()
		}
		if res, err = scheme.Verify(keys, r, now); err == nil {
			owner = set.owner
			break
		}
	}
	if err != nil {
		if reason := webhookverify.Reason(err); reason != "" {
			return refuse(reason)
		}
		return err
	}
	evID := ids.New(ids.Event)
	payload, err := json.Marshal(refresher.WebhookPayload{ID: evID, Type: refresher.EventProviderWebhook, CreatedAt: now.UTC(),
		Data: refresher.WebhookData{WorkspaceID: conn.WorkspaceID, ConnectionID: conn.ID, Provider: conn.Provider,
			ProviderEventID: res.EventID, Body: string(r.Body)}})
	if err != nil {
		return err
	}
	at := now.UTC()
	d := store.WebhookDelivery{ID: ids.New("whd"), WorkspaceID: conn.WorkspaceID, EventID: evID,
		Type: refresher.EventProviderWebhook, Payload: string(payload), NextAttemptAt: &at, CreatedAt: at}
	ev := audit.Event{ID: evID, WorkspaceID: conn.WorkspaceID, Type: EventReceived, ConnectionID: conn.ID,
		Outcome: audit.Success, Data: audit.Data("provider", conn.Provider)}
	seen := store.InboundSeen{OwnerID: owner, Digest: hex.EncodeToString(res.Digest[:]), Expires: now.Add(scheme.RememberFor())}
	if err := s.store.RelayInboundWebhook(ctx, seen, d, ev); err != nil {
		if errors.Is(err, store.ErrReplay) {
			return refuse(ReasonReplay)
		}
		return err
	}
	return nil
}

// secretSet is the signing secrets of one owner: a connection, or a provider configuration.
type secretSet struct {
	owner   string // the replay record's owner: the connection id, or the provider configuration's id
	secrets []vault.Secret
}

// secrets opens every webhook signing secret that may have signed a delivery for conn:
// the connection's (current, then previous), then its provider configuration's; owners
// without a secret are left out.
func (s *Service) secrets(ctx context.Context, conn store.Connection) ([]secretSet, error) {
	var out []secretSet
	open := func(owner store.SecretOwner, ownerID string) error {
		row, err := s.store.WebhookSigningSecretOf(ctx, owner, conn.WorkspaceID, ownerID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		set := secretSet{owner: ownerID}
		for _, sealed := range [][]byte{row.Secret, row.PrevSecret} {
			if len(sealed) == 0 {
				continue
			}
			sec, err := s.creds.Open(ctx, vault.ProviderWebhookSecretBinding(conn.WorkspaceID, ownerID), sealed)
			if err != nil {
				return err
			}
			set.secrets = append(set.secrets, sec)
		}
		if len(set.secrets) > 0 {
			out = append(out, set)
		}
		return nil
	}
	if err := open(store.ConnectionWebhookSecret, conn.ID); err != nil {
		return out, err
	}
	e, err := s.providers.Get(ctx, conn.WorkspaceID, conn.Provider)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return out, nil
	case err != nil:
		return out, err
	}
	return out, open(store.ProviderWebhookSecret, e.ID)
}

package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// WebhookSigningSecret is a provider's webhook signing secret as stored: sealed under the
// credentials keyring (vault.ProviderWebhookSecretBinding of its owner), with its masked
// prefix, and during a provider-side rotation the secret it replaced.
type WebhookSigningSecret struct {
	OwnerID     string `gorm:"primaryKey"`
	WorkspaceID string
	Secret      []byte
	Prefix      string
	PrevSecret  []byte
	PrevPrefix  string
	UpdatedAt   time.Time
}

// SecretOwner says whose webhook signing secret it is: a connection's, or a provider
// configuration's (an app-level secret such as Slack's signing secret).
type SecretOwner string

// The owners of webhook signing secrets (their tables).
const (
	ConnectionWebhookSecret SecretOwner = "connection_webhook_secrets"
	ProviderWebhookSecret   SecretOwner = "provider_webhook_secrets"
)

// ErrReplay: a verified webhook's signed content was seen before, on this or another
// replica, within its window.
var ErrReplay = errors.New("store: webhook delivery seen before")

// ErrNoWebhookEndpoint: the workspace has no endpoint to relay a provider webhook to.
var ErrNoWebhookEndpoint = problem.Sentinel(problem.ErrNoWebhookEndpoint, "store: the workspace has no webhook endpoint")

// ownerExists checks that the owner row is in the workspace (ErrNotFound otherwise).
func (s *Store) ownerExists(tx *gorm.DB, owner SecretOwner, workspaceID, ownerID string) error {
	table := "connections"
	if owner == ProviderWebhookSecret {
		table = "providers"
	}
	var n int64
	if err := tx.Table(table).Where("id = ? AND workspace_id = ?", ownerID, workspaceID).Count(&n).Error; err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// PutWebhookSigningSecret stores sec as its owner's webhook signing secret, with evs, in
// one transaction. With keepPrevious the current secret (if any) becomes the previous one
// (replacing an older previous); without, any previous secret goes. A connection's view
// prefix follows. An owner not in sec.WorkspaceID is ErrNotFound.
func (s *Store) PutWebhookSigningSecret(ctx context.Context, owner SecretOwner, sec WebhookSigningSecret, keepPrevious bool, evs ...audit.Event) error {
	return s.classify(s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.ownerExists(tx, owner, sec.WorkspaceID, sec.OwnerID); err != nil {
			return err
		}
		var cur []WebhookSigningSecret
		if err := s.forUpdate(tx.Table(string(owner)).Where("owner_id = ?", sec.OwnerID)).Find(&cur).Error; err != nil {
			return err
		}
		if keepPrevious && len(cur) == 1 {
			sec.PrevSecret, sec.PrevPrefix = cur[0].Secret, cur[0].Prefix
		}
		if len(cur) == 1 {
			if err := tx.Table(string(owner)).Where("owner_id = ?", sec.OwnerID).Updates(map[string]any{
				"secret": sec.Secret, "prefix": sec.Prefix, "prev_secret": sec.PrevSecret, "prev_prefix": sec.PrevPrefix,
				"updated_at": sec.UpdatedAt.UTC()}).Error; err != nil {
				return err
			}
		} else if err := tx.Table(string(owner)).Create(&sec).Error; err != nil {
			return err
		}
		if err := s.setConnectionSecretPrefix(tx, owner, sec.OwnerID, sec.Prefix); err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	}))
}

func (s *Store) setConnectionSecretPrefix(tx *gorm.DB, owner SecretOwner, ownerID, prefix string) error {
	if owner != ConnectionWebhookSecret {
		return nil
	}
	return tx.Model(&Connection{}).Where("id = ?", ownerID).Update("webhook_secret_prefix", prefix).Error
}

// DeleteWebhookSigningSecret removes an owner's previous webhook signing secret
// (previousOnly: the end of a provider-side rotation), or both, with evs, in one
// transaction. Nothing to remove is ErrNotFound.
func (s *Store) DeleteWebhookSigningSecret(ctx context.Context, owner SecretOwner, workspaceID, ownerID string, previousOnly bool, evs ...audit.Event) error {
	return s.classify(s.tx(ctx, func(tx *gorm.DB) error {
		q := tx.Table(string(owner)).Where("owner_id = ? AND workspace_id = ?", ownerID, workspaceID)
		var res *gorm.DB
		if previousOnly {
			res = q.Where("prev_secret IS NOT NULL").Updates(map[string]any{"prev_secret": nil, "prev_prefix": "",
				"updated_at": s.now().UTC()})
		} else {
			res = q.Delete(&WebhookSigningSecret{})
		}
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if !previousOnly {
			if err := s.setConnectionSecretPrefix(tx, owner, ownerID, ""); err != nil {
				return err
			}
		}
		return s.appendEvents(tx, evs)
	}))
}

// WebhookSigningSecretOf returns an owner's webhook signing secret (ErrNotFound when it
// has none).
func (s *Store) WebhookSigningSecretOf(ctx context.Context, owner SecretOwner, workspaceID, ownerID string) (WebhookSigningSecret, error) {
	var sec WebhookSigningSecret
	err := s.db.WithContext(ctx).Table(string(owner)).Where("owner_id = ? AND workspace_id = ?", ownerID, workspaceID).Take(&sec).Error
	return sec, s.classify(err)
}

// InboundSeen is a verified provider webhook to remember: the digest of its signed
// content per connection, until Expires.
type InboundSeen struct {
	OwnerID string
	Digest  string
	Expires time.Time
}

// RelayInboundWebhook records a verified provider webhook and queues its relay, in one
// transaction: the workspace's endpoint must exist (ErrNoWebhookEndpoint; it is locked, so
// that deleting it, which drops pending deliveries, waits), the digest must be new or
// expired (ErrReplay: a replay on this or another replica, by the primary key), then the
// delivery goes into the outbox the webhook dispatcher sends with retries, and evs into
// the audit chain. A refusal writes nothing.
func (s *Store) RelayInboundWebhook(ctx context.Context, seen InboundSeen, d WebhookDelivery, evs ...audit.Event) error {
	exp := seen.Expires.Unix()
	if seen.Expires.Nanosecond() != 0 {
		exp++
	}
	return s.classify(s.tx(ctx, func(tx *gorm.DB) error {
		var eps []WebhookEndpoint
		if err := s.forUpdate(tx.Where("workspace_id = ?", d.WorkspaceID)).Find(&eps).Error; err != nil {
			return err
		}
		if len(eps) == 0 {
			return ErrNoWebhookEndpoint
		}
		res := tx.Exec(`INSERT INTO inbound_webhook_seen (owner_id, digest, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (owner_id, digest) DO UPDATE SET expires_at = excluded.expires_at
			WHERE inbound_webhook_seen.expires_at < ?`, seen.OwnerID, seen.Digest, exp, s.now().Unix())
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrReplay
		}
		if err := s.appendEvents(tx, evs); err != nil {
			return err
		}
		return tx.Create(&d).Error
	}))
}

// DeleteExpiredInboundWebhookSeen deletes the remembered webhook digests that expired
// before cutoff, batch rows per statement (default 5,000), and returns how many went.
func (s *Store) DeleteExpiredInboundWebhookSeen(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = 5000
	}
	var total int64
	for {
		res := s.db.WithContext(ctx).Exec(`DELETE FROM inbound_webhook_seen WHERE (owner_id, digest) IN
			(SELECT owner_id, digest FROM inbound_webhook_seen WHERE expires_at < ? LIMIT ?)`, cutoff.Unix(), batch)
		if res.Error != nil {
			return total, s.classify(res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < int64(batch) {
			return total, nil
		}
	}
}

// InboundConnection returns a connection by id alone (metadata only): the public inbound
// route knows no workspace until the connection names it.
func (s *Store) InboundConnection(ctx context.Context, id string) (Connection, error) {
	var c Connection
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&c).Error
	return c, s.classify(err)
}

// CreateConnectionWithWebhookSecret is CreateConnection with the connection's provider
// webhook signing secret (sec.OwnerID = c.ID), all in one transaction.
func (s *Store) CreateConnectionWithWebhookSecret(ctx context.Context, c Connection, cred Credential, sec WebhookSigningSecret, evs ...audit.Event) error {
	c.WebhookSecretPrefix = sec.Prefix
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&c).Error; err != nil {
			return err
		}
		if err := tx.Create(&cred).Error; err != nil {
			return err
		}
		if err := tx.Table(string(ConnectionWebhookSecret)).Create(&sec).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	})
}

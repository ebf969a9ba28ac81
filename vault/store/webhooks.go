package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
)

// WebhookEndpoint is a workspace's webhook receiver. Secret is sealed under the
// credentials keyring (owner: the workspace id, field "webhook_secret").
type WebhookEndpoint struct {
	WorkspaceID string `gorm:"primaryKey"`
	URL         string `gorm:"column:url"`
	Secret      []byte
	AuditSeq    int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// PrevSecret is the secret a rotation replaced (sealed the same way); deliveries are
	// signed with both until PrevRetireAfter (RotateWebhookSecret).
	PrevSecret      []byte
	PrevRetireAfter *time.Time
}

// TableName implements gorm's tabler.
func (WebhookEndpoint) TableName() string { return "webhook_endpoints" }

// WebhookDelivery is one event to deliver to a workspace's endpoint.
type WebhookDelivery struct {
	ID            string `gorm:"primaryKey"`
	WorkspaceID   string
	EventID       string
	Type          string
	Payload       string
	Attempts      int
	NextAttemptAt *time.Time
	LastStatus    int
	DeliveredAt   *time.Time
	CreatedAt     time.Time
}

// TableName implements gorm's tabler.
func (WebhookDelivery) TableName() string { return "webhook_deliveries" }

// PutWebhookEndpoint creates or replaces a workspace's endpoint. A new endpoint starts at
// the head of the workspace's audit chain: it receives events from now on, not history.
func (s *Store) PutWebhookEndpoint(ctx context.Context, ep WebhookEndpoint, evs ...audit.Event) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var head auditHead
		switch err := tx.Where("workspace_id = ?", ep.WorkspaceID).Take(&head).Error; {
		case errors.Is(err, gorm.ErrRecordNotFound):
		case err != nil:
			return err
		}
		var cur WebhookEndpoint
		switch err := s.forUpdate(tx.Where("workspace_id = ?", ep.WorkspaceID)).Take(&cur).Error; {
		case errors.Is(err, gorm.ErrRecordNotFound):
			ep.AuditSeq = head.Seq
			if err := tx.Create(&ep).Error; err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if err := tx.Model(&WebhookEndpoint{}).Where("workspace_id = ?", ep.WorkspaceID).Updates(map[string]any{
				"url": ep.URL, "secret": ep.Secret, "updated_at": ep.UpdatedAt,
				"prev_secret": nil, "prev_retire_after": nil}).Error; err != nil { // a PUT replaces outright
				return err
			}
		}
		return s.appendEvents(tx, evs)
	})
}

// WebhookEndpointOf returns a workspace's endpoint.
func (s *Store) WebhookEndpointOf(ctx context.Context, workspaceID string) (WebhookEndpoint, error) {
	var ep WebhookEndpoint
	err := s.db.WithContext(ctx).Where("workspace_id = ?", workspaceID).Take(&ep).Error
	return ep, s.classify(err)
}

// RotateWebhookSecret makes sealed the workspace's signing secret and keeps the current
// one as the previous secret until retireAfter, with evs, in one transaction. A workspace
// without an endpoint is ErrNotFound.
func (s *Store) RotateWebhookSecret(ctx context.Context, workspaceID string, sealed []byte, retireAfter time.Time, evs ...audit.Event) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var cur WebhookEndpoint
		if err := s.forUpdate(tx.Where("workspace_id = ?", workspaceID)).Take(&cur).Error; err != nil {
			return err
		}
		if err := tx.Model(&WebhookEndpoint{}).Where("workspace_id = ?", workspaceID).Updates(map[string]any{
			"secret": sealed, "prev_secret": cur.Secret, "prev_retire_after": retireAfter.UTC(), "updated_at": s.now().UTC()}).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	})
}

// DeleteWebhookEndpoint removes a workspace's endpoint and its pending deliveries.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, workspaceID string, evs ...audit.Event) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Where("workspace_id = ?", workspaceID).Delete(&WebhookEndpoint{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if err := tx.Where("workspace_id = ? AND delivered_at IS NULL", workspaceID).Delete(&WebhookDelivery{}).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	})
}

// WebhookMapper turns an audit event into a delivery's type and JSON body, or ok false
// when the event is not one that webhooks carry.
type WebhookMapper func(e audit.Event) (typ, payload string, ok bool)

// EnqueueWebhooks reads each endpoint's workspace chain past the endpoint's cursor (at
// most limit events per endpoint, by the (workspace_id, seq) index), inserts a delivery
// for every event mapper accepts, and moves the cursor, in one transaction per endpoint.
// Deriving deliveries from the audit chain means an event is delivered if and only if its
// change was committed. On PostgreSQL an endpoint another replica is working on is skipped.
func (s *Store) EnqueueWebhooks(ctx context.Context, mapper WebhookMapper, now time.Time, limit int) (int, error) {
	var wsList []string
	if err := s.db.WithContext(ctx).Model(&WebhookEndpoint{}).Pluck("workspace_id", &wsList).Error; err != nil {
		return 0, s.classify(err)
	}
	total := 0
	for _, ws := range wsList {
		err := s.tx(ctx, func(tx *gorm.DB) error {
			q := tx.Where("workspace_id = ?", ws)
			if s.dialect == Postgres {
				q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
			}
			var ep WebhookEndpoint
			if err := q.Take(&ep).Error; err != nil {
				if errors.Is(err, gorm.ErrRecordNotFound) {
					return nil
				}
				return err
			}
			var rows []auditRow
			if err := tx.Where("workspace_id = ? AND seq > ?", ws, ep.AuditSeq).Order("seq").Limit(limit).Find(&rows).Error; err != nil {
				return err
			}
			if len(rows) == 0 {
				return nil
			}
			at := now.UTC()
			for _, r := range rows {
				typ, payload, ok := mapper(audit.Event(r))
				if !ok {
					continue
				}
				d := WebhookDelivery{ID: ids.New("whd"), WorkspaceID: ws, EventID: r.ID, Type: typ, Payload: payload,
					NextAttemptAt: &at, CreatedAt: at}
				if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&d).Error; err != nil {
					return err
				}
				total++
			}
			return tx.Model(&WebhookEndpoint{}).Where("workspace_id = ?", ws).Update("audit_seq", rows[len(rows)-1].Seq).Error
		})
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// ClaimedDelivery is a delivery with where it goes.
type ClaimedDelivery struct {
	WebhookDelivery
	URL    string
	Secret []byte
	// PrevSecret is set during a rotation window: the delivery is signed with both.
	PrevSecret []byte
}

// ClaimWebhookDeliveries claims up to limit due deliveries until claimUntil (by moving
// their next attempt there, so that a replica that dies mid-delivery only delays it) and
// returns them with their endpoints. It reads the partial index on next_attempt_at.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, now, claimUntil time.Time, limit int) ([]ClaimedDelivery, error) {
	var out []ClaimedDelivery
	err := s.tx(ctx, func(tx *gorm.DB) error {
		q := tx.Where("next_attempt_at IS NOT NULL AND next_attempt_at <= ?", now.UTC()).Order("next_attempt_at").Limit(limit)
		if s.dialect == Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		var ds []WebhookDelivery
		if err := q.Find(&ds).Error; err != nil {
			return err
		}
		for _, d := range ds {
			var ep WebhookEndpoint
			if err := tx.Where("workspace_id = ?", d.WorkspaceID).Take(&ep).Error; err != nil {
				if errors.Is(err, gorm.ErrRecordNotFound) {
					continue
				}
				return err
			}
			if err := tx.Model(&WebhookDelivery{}).Where("id = ?", d.ID).Update("next_attempt_at", claimUntil.UTC()).Error; err != nil {
				return err
			}
			cd := ClaimedDelivery{WebhookDelivery: d, URL: ep.URL, Secret: ep.Secret}
			if len(ep.PrevSecret) > 0 && ep.PrevRetireAfter != nil && now.Before(*ep.PrevRetireAfter) {
				cd.PrevSecret = ep.PrevSecret
			}
			out = append(out, cd)
		}
		return nil
	})
	return out, err
}

// FinishWebhookDelivery records an attempt: delivered, or failed with the next attempt
// at next (nil: give up).
func (s *Store) FinishWebhookDelivery(ctx context.Context, id string, status int, delivered bool, next *time.Time, now time.Time) error {
	upd := map[string]any{"attempts": gorm.Expr("attempts + 1"), "last_status": status, "next_attempt_at": next}
	if delivered {
		upd["delivered_at"], upd["next_attempt_at"] = now.UTC(), nil
	}
	return s.classify(s.db.WithContext(ctx).Model(&WebhookDelivery{}).Where("id = ?", id).Updates(upd).Error)
}

// WebhookDeliveries lists a workspace's deliveries, newest first (tests, operators).
func (s *Store) WebhookDeliveries(ctx context.Context, workspaceID string, limit int) ([]WebhookDelivery, error) {
	var out []WebhookDelivery
	err := s.db.WithContext(ctx).Where("workspace_id = ?", workspaceID).Order("created_at DESC, id").Limit(limit).Find(&out).Error
	return out, s.classify(err)
}

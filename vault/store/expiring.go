package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// NotifyExpiring finds up to limit active connections whose refresh token ends before
// `before` (refresh_token_expires_at) and that have not been notified for that end yet,
// marks each (expiring_notified_for = its refresh_token_expires_at) and appends the event
// mk makes of it, one transaction per connection. The mark is a compare-and-set on the
// expiry, so replicas sweeping together notify once per connection per expiry, and a new
// expiry (a refresh that moved it) is notified again when it comes near. It returns the
// connections it marked.
func (s *Store) NotifyExpiring(ctx context.Context, before time.Time, limit int, mk func(Connection) audit.Event) ([]Connection, error) {
	var due []Connection
	err := s.db.WithContext(ctx).Where("refresh_token_expires_at IS NOT NULL AND refresh_token_expires_at <= ? AND status = ?"+
		" AND (expiring_notified_for IS NULL OR expiring_notified_for <> refresh_token_expires_at)", before.UTC(), StatusActive).
		Order("refresh_token_expires_at").Limit(limit).Find(&due).Error
	if err != nil {
		return nil, s.classify(err)
	}
	var out []Connection
	for _, c := range due {
		marked := false
		err := s.tx(ctx, func(tx *gorm.DB) error {
			// Column to column: no timestamp goes through a parameter's formatting.
			res := tx.Model(&Connection{}).Where("id = ? AND refresh_token_expires_at IS NOT NULL AND "+
				"(expiring_notified_for IS NULL OR expiring_notified_for <> refresh_token_expires_at)", c.ID).
				Update("expiring_notified_for", gorm.Expr("refresh_token_expires_at"))
			if res.Error != nil || res.RowsAffected != 1 {
				return res.Error // another replica did it, or the expiry moved: nothing to say
			}
			marked = true
			return s.appendEvents(tx, []audit.Event{mk(c)})
		})
		if err != nil {
			return out, err
		}
		if marked {
			c.ExpiringNotifiedFor = c.RefreshTokenExpiresAt
			out = append(out, c)
		}
	}
	return out, nil
}

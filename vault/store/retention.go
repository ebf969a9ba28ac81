package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// Bounds of a workspace's audit retention.
const (
	MinAuditRetention = 24 * time.Hour
	MaxAuditRetention = 10 * 365 * 24 * time.Hour
)

// ErrInvalidRetention: a retention outside [MinAuditRetention, MaxAuditRetention].
var ErrInvalidRetention = errors.New("store: audit retention must be between 24h and 87600h")

// AuditRetentionOverrides returns the workspaces whose audit retention differs from the
// deployment's, with their retention.
func (s *Store) AuditRetentionOverrides(ctx context.Context) (map[string]time.Duration, error) {
	var rows []Workspace
	err := s.db.WithContext(ctx).Where("audit_retention_seconds IS NOT NULL").Find(&rows).Error
	if err != nil {
		return nil, s.classify(err)
	}
	out := make(map[string]time.Duration, len(rows))
	for _, w := range rows {
		out[w.ID] = time.Duration(*w.AuditRetentionSeconds) * time.Second
	}
	return out, nil
}

// SetAuditRetention sets (or, with nil, clears) a workspace's audit retention, with its
// audit event, in one transaction. An unknown workspace is ErrNotFound.
func (s *Store) SetAuditRetention(ctx context.Context, workspaceID string, retention *time.Duration, evs ...audit.Event) (Workspace, error) {
	if retention != nil && (*retention < MinAuditRetention || *retention > MaxAuditRetention) {
		return Workspace{}, ErrInvalidRetention
	}
	var ws Workspace
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var secs *int64
		if retention != nil {
			v := int64(*retention / time.Second)
			secs = &v
		}
		res := tx.Model(&Workspace{}).Where("id = ?", workspaceID).Update("audit_retention_seconds", secs)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if err := tx.Where("id = ?", workspaceID).Take(&ws).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	})
	return ws, err
}

package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// SetWorkspaceFrozen freezes (frozen) or unfreezes a workspace, with its audit events, in
// one transaction; freezing a frozen workspace keeps its first frozen_at. The write empties
// the sealed-row cache (the workspaces table is cached: conncache.go) here, and on
// PostgreSQL the trigger of migration 00021 empties every replica's. An unknown workspace
// is ErrNotFound.
func (s *Store) SetWorkspaceFrozen(ctx context.Context, workspaceID string, frozen bool, evs ...audit.Event) (Workspace, error) {
	var ws Workspace
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.forUpdate(tx.Where("id = ?", workspaceID)).Take(&ws).Error; err != nil {
			return err
		}
		var at *time.Time
		if frozen {
			if ws.FrozenAt != nil {
				at = ws.FrozenAt
			} else {
				now := s.now().UTC()
				at = &now
			}
		}
		if err := tx.Model(&Workspace{}).Where("id = ?", workspaceID).Update("frozen_at", at).Error; err != nil {
			return err
		}
		ws.FrozenAt = at
		return s.appendEvents(tx, evs)
	})
	return ws, notFound(err)
}

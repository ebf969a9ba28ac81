package store

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// InsertAPIKey stores a key and its audit event.
func (s *Store) InsertAPIKey(ctx context.Context, k APIKey, evs ...audit.Event) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&k).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	})
}

// EnsureAPIKey stores k unless a key with the same hash exists (the bootstrap key).
// It reports whether it inserted.
func (s *Store) EnsureAPIKey(ctx context.Context, k APIKey, evs ...audit.Event) (bool, error) {
	inserted := false
	err := s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&k)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return nil
		}
		inserted = true
		return s.appendEvents(tx, evs)
	})
	return inserted, err
}

// APIKeyByHash finds a key by its keyed hash (revoked keys included: the caller decides).
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (APIKey, error) {
	var k APIKey
	err := s.db.WithContext(ctx).Where("hash = ?", hash).Take(&k).Error
	return k, s.classify(err)
}

// ListAPIKeys returns a workspace's unrevoked keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, workspaceID string) ([]APIKey, error) {
	var out []APIKey
	err := s.db.WithContext(ctx).Where("workspace_id = ? AND revoked_at IS NULL", workspaceID).
		Order("created_at, id").Find(&out).Error
	return out, s.classify(err)
}

// RevokeAPIKey marks a key of the workspace revoked. A key that does not exist in the
// workspace, or is already revoked, is ErrNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, workspaceID, id string, evs ...audit.Event) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&APIKey{}).Where("workspace_id = ? AND id = ? AND revoked_at IS NULL", workspaceID, id).
			Update("revoked_at", s.now().UTC())
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return s.appendEvents(tx, evs)
	})
}

// ProxyKey returns the active proxy key of a purpose, or ErrNotFound.
func (s *Store) ProxyKey(ctx context.Context, purpose string) (ProxyKey, error) {
	var k ProxyKey
	err := s.db.WithContext(ctx).Where("purpose = ? AND state = ?", purpose, "active").
		Order("created_at DESC").Take(&k).Error
	return k, s.classify(err)
}

// ProxyKeyByID returns a proxy key by id.
func (s *Store) ProxyKeyByID(ctx context.Context, id string) (ProxyKey, error) {
	var k ProxyKey
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&k).Error
	return k, s.classify(err)
}

// InsertProxyKeyIfAbsent stores k unless a key with its id exists; either way it returns
// the stored key, so replicas starting together agree on one.
func (s *Store) InsertProxyKeyIfAbsent(ctx context.Context, k ProxyKey) (ProxyKey, error) {
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&k).Error
	if err != nil {
		return ProxyKey{}, s.classify(err)
	}
	got, err := s.ProxyKeyByID(ctx, k.ID)
	if errors.Is(err, ErrNotFound) {
		return ProxyKey{}, errors.New("store: proxy key vanished after insert")
	}
	return got, err
}

package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// AllProxyKeys returns every key of a purpose, retired ones included, newest first.
func (s *Store) AllProxyKeys(ctx context.Context, purpose string) ([]ProxyKey, error) {
	var out []ProxyKey
	err := s.db.WithContext(ctx).Where("purpose = ?", purpose).Order("created_at DESC, id DESC").Find(&out).Error
	return out, s.classify(err)
}

// ProxyKeys returns the unretired keys of a purpose (active and verify-only), newest first.
func (s *Store) ProxyKeys(ctx context.Context, purpose string) ([]ProxyKey, error) {
	var out []ProxyKey
	err := s.db.WithContext(ctx).Where("purpose = ? AND state IN ?", purpose, []string{ProxyKeyActive, ProxyKeyVerifyOnly}).
		Order("created_at DESC, id DESC").Find(&out).Error
	return out, s.classify(err)
}

// RotateProxyKey makes next the active key of its purpose and every key that was active
// verify-only (rotated now, retiring at retireAfter when set), with evs, in one
// transaction. It returns the ids of the keys it moved to verify-only.
func (s *Store) RotateProxyKey(ctx context.Context, next ProxyKey, retireAfter *time.Time, evs ...audit.Event) ([]string, error) {
	if next.ID == "" || next.Purpose == "" || len(next.Sealed) == 0 {
		return nil, errors.New("store: proxy key without id, purpose or material")
	}
	next.State = ProxyKeyActive
	var moved []string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var old []ProxyKey
		if err := s.forUpdate(tx.Where("purpose = ? AND state = ?", next.Purpose, ProxyKeyActive)).Find(&old).Error; err != nil {
			return err
		}
		now := s.now().UTC()
		for _, k := range old {
			if err := tx.Model(&ProxyKey{}).Where("id = ?", k.ID).
				Updates(map[string]any{"state": ProxyKeyVerifyOnly, "rotated_at": now, "retire_after": retireAfter}).Error; err != nil {
				return err
			}
			moved = append(moved, k.ID)
		}
		if err := tx.Create(&next).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	})
	return moved, err
}

// RetireExpiredProxyKeys retires the verify-only keys of a purpose whose retire_after is
// past. It returns how many it retired.
func (s *Store) RetireExpiredProxyKeys(ctx context.Context, purpose string, now time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Model(&ProxyKey{}).
		Where("purpose = ? AND state = ? AND retire_after IS NOT NULL AND retire_after <= ?", purpose, ProxyKeyVerifyOnly, now.UTC()).
		Update("state", ProxyKeyRetired)
	return res.RowsAffected, s.classify(res.Error)
}

// RetireUnusedHashKeys retires the verify-only keys of a purpose that no unrevoked API
// key's hash_key_id names any more (an API-key hash cannot be recomputed under another key,
// so an old hashing key lives as long as one key hashed with it).
func (s *Store) RetireUnusedHashKeys(ctx context.Context, purpose string) (int64, error) {
	res := s.db.WithContext(ctx).Model(&ProxyKey{}).
		Where("purpose = ? AND state = ?", purpose, ProxyKeyVerifyOnly).
		Where("NOT EXISTS (SELECT 1 FROM api_keys WHERE api_keys.hash_key_id = proxy_keys.id AND api_keys.revoked_at IS NULL)").
		Update("state", ProxyKeyRetired)
	return res.RowsAffected, s.classify(res.Error)
}

// APIKeysByHashes returns every key whose hash is one of hashes (one per hashing key that
// still verifies), oldest first, in one indexed lookup. Revoked keys are included: the
// caller decides, and a key can have several rows (one per hashing key it was stored under).
func (s *Store) APIKeysByHashes(ctx context.Context, hashes [][]byte) ([]APIKey, error) {
	if len(hashes) == 0 {
		return nil, nil
	}
	var out []APIKey
	q := s.db.WithContext(ctx)
	if len(hashes) == 1 {
		q = q.Where("hash = ?", hashes[0])
	} else {
		q = q.Where("hash IN ?", hashes)
	}
	err := q.Order("created_at, id").Find(&out).Error
	return out, s.classify(err)
}

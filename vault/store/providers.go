package store

import (
	"context"
	"errors"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// PutProvider creates or replaces a workspace's provider (by key). When secret is not
// nil it replaces the client secret; keepSecret=false with a nil secret removes it.
// The stored provider keeps its id across updates so sealed client secrets stay bound.
func (s *Store) PutProvider(ctx context.Context, p Provider, secret *ProviderSecret, keepSecret bool, evs ...audit.Event) (Provider, error) {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var existing Provider
		err := s.forUpdate(tx.Where("workspace_id = ? AND key = ?", p.WorkspaceID, p.Key)).Take(&existing).Error
		switch {
		case err == nil:
			if secret != nil && p.ID != existing.ID {
				// The secret was sealed for another id: a concurrent create won.
				return ErrConflict
			}
			p.ID, p.CreatedAt = existing.ID, existing.CreatedAt
			if err := tx.Model(&Provider{}).Where("id = ?", p.ID).
				Updates(map[string]any{"auth_mode": p.AuthMode, "config": p.Config, "updated_at": p.UpdatedAt}).Error; err != nil {
				return err
			}
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return err
		default:
			if err := tx.Create(&p).Error; err != nil {
				return err
			}
		}
		switch {
		case secret != nil:
			secret.ProviderID, secret.WorkspaceID = p.ID, p.WorkspaceID
			if err := tx.Save(secret).Error; err != nil {
				return err
			}
		case !keepSecret:
			if err := tx.Where("provider_id = ?", p.ID).Delete(&ProviderSecret{}).Error; err != nil {
				return err
			}
		}
		return s.appendEvents(tx, evs)
	})
	return p, err
}

// Provider returns a workspace's provider by key, or ErrNotFound.
func (s *Store) Provider(ctx context.Context, workspaceID, key string) (Provider, error) {
	var p Provider
	err := s.db.WithContext(ctx).Where("workspace_id = ? AND key = ?", workspaceID, key).Take(&p).Error
	return p, s.classify(err)
}

// ListProviders returns a workspace's providers by key.
func (s *Store) ListProviders(ctx context.Context, workspaceID string) ([]Provider, error) {
	var out []Provider
	err := s.db.WithContext(ctx).Where("workspace_id = ?", workspaceID).Order("key").Find(&out).Error
	return out, s.classify(err)
}

// ProviderSecret returns a provider's sealed client secret, or ErrNotFound.
func (s *Store) ProviderSecret(ctx context.Context, providerID string) (ProviderSecret, error) {
	var ps ProviderSecret
	err := s.db.WithContext(ctx).Where("provider_id = ?", providerID).Take(&ps).Error
	return ps, s.classify(err)
}

// DeleteProvider removes a provider and its secret.
func (s *Store) DeleteProvider(ctx context.Context, workspaceID, key string, evs ...audit.Event) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var p Provider
		if err := tx.Where("workspace_id = ? AND key = ?", workspaceID, key).Take(&p).Error; err != nil {
			return err
		}
		if err := tx.Where("provider_id = ?", p.ID).Delete(&ProviderSecret{}).Error; err != nil {
			return err
		}
		if err := tx.Where("id = ?", p.ID).Delete(&Provider{}).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	})
}

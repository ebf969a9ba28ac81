package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// PutProvider creates or replaces a workspace's provider (by key). When secret is not
// nil it replaces the client secret; keepSecret=false with a nil secret removes it.
// The stored provider keeps its id across updates so sealed client secrets stay bound.
func (s *Store) PutProvider(ctx context.Context, p Provider, secret *ProviderSecret, keepSecret bool, evs ...audit.Event) (Provider, error) {
	w, err := s.WriteProvider(ctx, ProviderWrite{Row: p, Secret: secret, KeepSecret: keepSecret, Events: evs})
	return w.Provider, err
}

// ProviderWrite is a provider to create or replace with WriteProvider.
type ProviderWrite struct {
	Row Provider
	// Secret, when not nil, replaces the client secret; KeepSecret=false with a nil
	// Secret removes it.
	Secret     *ProviderSecret
	KeepSecret bool
	// Next, when not nil, sets the next client secret (its Next* fields) beside the current
	// one, which must exist (ErrNoClientSecret otherwise). A Secret without Next fields
	// clears any next secret: a new current secret ends a rotation.
	Next   *ProviderSecret
	Events []audit.Event
	// Guard, when set, decides under the provider's row lock, with the row as stored
	// (nil when the key is new): an error aborts the write (returned as is); a non-empty
	// reason puts every active or errored connection of the provider into needs_reauth
	// with that StatusReason, each with the audit event Reauth makes of it.
	Guard  func(stored *Provider) (reason string, err error)
	Reauth func(c Connection) audit.Event
}

// ProviderWritten is what WriteProvider stored: the provider, and the connections it
// put into needs_reauth (as stored).
type ProviderWritten struct {
	Provider Provider
	Reauthed []Connection
}

// WriteProvider creates or replaces a provider as PutProvider does, and in the same
// transaction applies the Guard's decision: the provider's connections become
// needs_reauth, with their events, or nothing is written.
func (s *Store) WriteProvider(ctx context.Context, w ProviderWrite) (ProviderWritten, error) {
	var out ProviderWritten
	err := s.tx(ctx, func(tx *gorm.DB) error {
		p, secret := w.Row, w.Secret
		var existing Provider
		err := s.forUpdate(tx.Where("workspace_id = ? AND key = ?", p.WorkspaceID, p.Key)).Take(&existing).Error
		stored := &existing
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			stored = nil
		case err != nil:
			return err
		}
		reason := ""
		if w.Guard != nil {
			if reason, err = w.Guard(stored); err != nil {
				return err
			}
		}
		if stored != nil {
			if secret != nil && p.ID != existing.ID {
				// The secret was sealed for another id: a concurrent create won.
				return ErrConflict
			}
			p.ID, p.CreatedAt = existing.ID, existing.CreatedAt
			if err := tx.Model(&Provider{}).Where("id = ?", p.ID).
				Updates(map[string]any{"auth_mode": p.AuthMode, "config": p.Config, "updated_at": p.UpdatedAt}).Error; err != nil {
				return err
			}
		} else if err := tx.Create(&p).Error; err != nil {
			return err
		}
		switch {
		case secret != nil:
			secret.ProviderID, secret.WorkspaceID = p.ID, p.WorkspaceID
			if err := tx.Save(secret).Error; err != nil {
				return err
			}
		case !w.KeepSecret:
			if err := tx.Where("provider_id = ?", p.ID).Delete(&ProviderSecret{}).Error; err != nil {
				return err
			}
		}
		if n := w.Next; n != nil {
			res := tx.Model(&ProviderSecret{}).Where("provider_id = ?", p.ID).Updates(map[string]any{
				"next_sealed": n.NextSealed, "next_prefix": n.NextPrefix, "next_origins": n.NextOrigins})
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected != 1 {
				return ErrNoClientSecret
			}
		}
		evs := w.Events
		if reason != "" {
			cs, err := s.reauthProvider(tx, p.WorkspaceID, p.Key, reason, p.UpdatedAt)
			if err != nil {
				return err
			}
			for _, c := range cs {
				if w.Reauth != nil {
					evs = append(evs, w.Reauth(c))
				}
			}
			out.Reauthed = cs
		}
		out.Provider = p
		return s.appendEvents(tx, evs)
	})
	if err != nil {
		return ProviderWritten{}, err
	}
	return out, nil
}

// reauthProvider puts every active or errored connection of the workspace's provider
// into needs_reauth with reason (unscheduled, version moved, so a refresh in flight loses
// its lease) and returns them as stored.
func (s *Store) reauthProvider(tx *gorm.DB, workspaceID, provider, reason string, now time.Time) ([]Connection, error) {
	now = now.UTC()
	scope := func() *gorm.DB {
		return tx.Model(&Connection{}).Where("workspace_id = ? AND provider = ? AND status IN ?",
			workspaceID, provider, []string{StatusActive, StatusError})
	}
	var cs []Connection
	if err := s.forUpdate(scope()).Order("id").Find(&cs).Error; err != nil || len(cs) == 0 {
		return nil, err
	}
	if err := scope().Updates(map[string]any{"status": StatusNeedsReauth, "status_reason": reason,
		"next_refresh_at": nil, "version": gorm.Expr("version + 1"), "updated_at": now}).Error; err != nil {
		return nil, err
	}
	for i := range cs {
		c := &cs[i]
		c.Status, c.StatusReason, c.NextRefreshAt, c.Version, c.UpdatedAt = StatusNeedsReauth, reason, nil, c.Version+1, now
	}
	return cs, nil
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

// ErrNoClientSecret: a next client secret was given for a provider without a current one.
var ErrNoClientSecret = problem.Sentinel(problem.ErrInvalidRequest.WithField("client_secret_next",
	"the provider has no client_secret to rotate from"), "store: the provider has no client secret")

// ErrNoNextClientSecret: promote or drop found no next client secret.
var ErrNoNextClientSecret = problem.Sentinel(problem.ErrNoNextClientSecret, "store: the provider has no next client secret")

// PromoteNextClientSecret makes the workspace's provider key's next client secret the
// current one (the old one is deleted); with drop, it deletes the next one instead. The
// next secret is sealed with the current one's binding, so this moves ciphertext only.
// ErrNotFound when there is no such provider, ErrNoNextClientSecret when it has no next
// secret; evs are appended in the same transaction.
func (s *Store) PromoteNextClientSecret(ctx context.Context, workspaceID, key string, drop bool, now time.Time, evs ...audit.Event) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var p Provider
		if err := s.forUpdate(tx.Where("workspace_id = ? AND key = ?", workspaceID, key)).Take(&p).Error; err != nil {
			return err
		}
		var sec ProviderSecret
		err := tx.Where("provider_id = ?", p.ID).Take(&sec).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			return ErrNoNextClientSecret
		case err != nil:
			return err
		case len(sec.NextSealed) == 0:
			return ErrNoNextClientSecret
		}
		upd := map[string]any{"next_sealed": nil, "next_prefix": "", "next_origins": nil}
		if !drop {
			upd["sealed"], upd["prefix"], upd["origins"], upd["updated_at"] = sec.NextSealed, sec.NextPrefix, sec.NextOrigins, now.UTC()
		}
		if err := tx.Model(&ProviderSecret{}).Where("provider_id = ?", p.ID).Updates(upd).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	})
}

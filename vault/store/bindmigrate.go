package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// The origin-binding migration's queries: credentials and client secrets stored before
// origin binding (origins NULL) in batches after a cursor kept in origin_binding_progress,
// and their re-sealed, bound form written with compare-and-swap so that a concurrent
// write (a refresh, a reconnect, a new secret) is never overwritten.

// Progress names in origin_binding_progress.
const (
	BindProgressCredentials   = "credentials"
	BindProgressClientSecrets = "client_secrets"
)

type bindProgress struct {
	Name      string `gorm:"primaryKey"`
	Cursor    string
	Done      bool
	UpdatedAt time.Time
}

func (bindProgress) TableName() string { return "origin_binding_progress" }

// BindCursor returns where the migration of name stopped ("" to start) and whether it
// has reached the end before.
func (s *Store) BindCursor(ctx context.Context, name string) (cursor string, done bool, err error) {
	var p bindProgress
	err = s.db.WithContext(ctx).Where("name = ?", name).Take(&p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", false, nil
	}
	return p.Cursor, p.Done, s.classify(err)
}

// SaveBindCursor records the migration's progress.
func (s *Store) SaveBindCursor(ctx context.Context, name, cursor string, done bool) error {
	p := bindProgress{Name: name, Cursor: cursor, Done: done, UpdatedAt: s.now().UTC()}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "name"}},
		DoUpdates: clause.AssignmentColumns([]string{"cursor", "done", "updated_at"})}).Create(&p).Error
	return s.classify(err)
}

// UnboundCredentials returns up to limit connections whose credential is not bound to
// origins yet, with connection ids after after, in id order.
func (s *Store) UnboundCredentials(ctx context.Context, after string, limit int) ([]ConnectionCredential, error) {
	var idList []string
	err := s.db.WithContext(ctx).Model(&Credential{}).Where("access_origins IS NULL AND connection_id > ?", after).
		Order("connection_id").Limit(limit).Pluck("connection_id", &idList).Error
	if err != nil || len(idList) == 0 {
		return nil, s.classify(err)
	}
	out, err := s.connectionsWithCredentials(ctx, idList)
	if err != nil {
		return nil, err
	}
	// connectionsWithCredentials orders by next_refresh_at; the cursor needs id order.
	byID := make(map[string]ConnectionCredential, len(out))
	for _, cc := range out {
		byID[cc.ID] = cc
	}
	out = out[:0]
	for _, id := range idList {
		if cc, ok := byID[id]; ok {
			out = append(out, cc)
		}
	}
	return out, nil
}

// BindCredential writes a credential's re-sealed fields with their origins, if the
// connection is still at version and its credential still unbound (else ErrConflict:
// something wrote it since it was read). The connection's version moves on, so a refresh
// that read the row before fails its fence and throws its result away.
func (s *Store) BindCredential(ctx context.Context, workspaceID, connectionID string, version int64, cred Credential) error {
	if cred.AccessOrigins == nil || cred.RefreshOrigins == nil {
		return errors.New("store: BindCredential needs both bindings")
	}
	return s.classify(s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Connection{}).Where("workspace_id = ? AND id = ? AND version = ?", workspaceID, connectionID, version).
			Updates(map[string]any{"version": version + 1})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrConflict
		}
		res = tx.Model(&Credential{}).Where("connection_id = ? AND access_origins IS NULL", connectionID).
			Updates(map[string]any{"access_token": cred.AccessToken, "refresh_token": cred.RefreshToken,
				"api_key": cred.APIKey, "access_origins": cred.AccessOrigins, "refresh_origins": cred.RefreshOrigins})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrConflict
		}
		return nil
	}))
}

// UnboundSecret is a client secret not bound to origins yet, with its provider.
type UnboundSecret struct {
	ProviderSecret
	Provider Provider
}

// UnboundProviderSecrets returns up to limit client secrets not bound to origins yet,
// with provider ids after after, in id order.
func (s *Store) UnboundProviderSecrets(ctx context.Context, after string, limit int) ([]UnboundSecret, error) {
	var secs []ProviderSecret
	err := s.db.WithContext(ctx).Where("origins IS NULL AND provider_id > ?", after).Order("provider_id").Limit(limit).
		Find(&secs).Error
	if err != nil {
		return nil, s.classify(err)
	}
	out := make([]UnboundSecret, 0, len(secs))
	for _, sec := range secs {
		var p Provider
		if err := s.db.WithContext(ctx).Where("id = ?", sec.ProviderID).Take(&p).Error; err != nil {
			return nil, s.classify(err)
		}
		out = append(out, UnboundSecret{ProviderSecret: sec, Provider: p})
	}
	return out, nil
}

// BindProviderSecret writes a client secret re-sealed with its origins, if it is still
// the unbound secret that was read (the same ciphertext; else ErrConflict).
func (s *Store) BindProviderSecret(ctx context.Context, old ProviderSecret, sealed []byte, origins *Strings) error {
	if origins == nil {
		return errors.New("store: BindProviderSecret needs a binding")
	}
	res := s.db.WithContext(ctx).Model(&ProviderSecret{}).
		Where("provider_id = ? AND origins IS NULL AND sealed = ?", old.ProviderID, old.Sealed).
		Updates(map[string]any{"sealed": sealed, "origins": origins})
	if res.Error != nil {
		return s.classify(res.Error)
	}
	if res.RowsAffected != 1 {
		return ErrConflict
	}
	return nil
}

// BindProgress keeps a binding migration's cursor (*Store).
type BindProgress interface {
	BindCursor(ctx context.Context, name string) (string, bool, error)
	SaveBindCursor(ctx context.Context, name, cursor string, done bool) error
}

// BindBatches drives the origin-binding migration name: from the stored cursor (from the
// start again once a run has reached the end, for rows an older replica wrote unbound
// since), fetch a batch after the cursor, bind each row, save the cursor after the batch,
// until a batch is empty, then mark the migration done. A database or KMS outage (fatal)
// or a cancelled ctx stops it with the error, the progress kept; any other failure of a
// row skips it (it stays unbound, and refused) and is passed to skipped.
func BindBatches[T any](ctx context.Context, st BindProgress, name string, batch int,
	fetch func(ctx context.Context, after string, limit int) ([]T, error), key func(T) string,
	bind func(context.Context, T) error, fatal func(error) bool, skipped func(T, error)) (bound, skip int, err error) {
	if batch <= 0 {
		batch = 200
	}
	cursor, done, err := st.BindCursor(ctx, name)
	if err != nil {
		return 0, 0, err
	}
	if done {
		cursor = ""
	}
	for {
		rows, err := fetch(ctx, cursor, batch)
		if err != nil {
			return bound, skip, err
		}
		if len(rows) == 0 {
			return bound, skip, st.SaveBindCursor(ctx, name, "", true)
		}
		for _, row := range rows {
			switch err := bind(ctx, row); {
			case err == nil:
				bound++
			case errors.Is(err, ErrUnavailable), ctx.Err() != nil, fatal(err):
				return bound, skip, err
			default:
				skip++
				skipped(row, err)
			}
		}
		cursor = key(rows[len(rows)-1])
		if err := st.SaveBindCursor(ctx, name, cursor, false); err != nil {
			return bound, skip, err
		}
	}
}

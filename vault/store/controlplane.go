package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// OutboxEntry is one queued control-plane event: Payload is the JSON of a
// controlplane.Event, which carries metadata only.
type OutboxEntry struct {
	ID        int64 `gorm:"primaryKey;autoIncrement"`
	CreatedAt time.Time
	Payload   string
	Attempts  int
}

// TableName implements gorm's tabler.
func (OutboxEntry) TableName() string { return "controlplane_outbox" }

type controlPlaneState struct {
	Name      string `gorm:"primaryKey"`
	Value     string
	UpdatedAt time.Time
}

func (controlPlaneState) TableName() string { return "controlplane_state" }

// EnqueueOutbox appends payloads to the control-plane outbox. If the outbox then holds
// more than limit rows, the oldest are deleted and their number returned as dropped.
func (s *Store) EnqueueOutbox(ctx context.Context, payloads []string, limit int64) (dropped int64, err error) {
	if len(payloads) == 0 {
		return 0, nil
	}
	if limit < 1 {
		return 0, errors.New("store: outbox limit must be positive")
	}
	now := s.now().UTC()
	rows := make([]OutboxEntry, len(payloads))
	for i, p := range payloads {
		rows[i] = OutboxEntry{CreatedAt: now, Payload: p}
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.CreateInBatches(rows, 200).Error; err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&OutboxEntry{}).Count(&n).Error; err != nil {
			return err
		}
		if n <= limit {
			return nil
		}
		oldest := tx.Model(&OutboxEntry{}).Select("id").Order("id").Limit(int(n - limit))
		res := tx.Where("id IN (?)", oldest).Delete(&OutboxEntry{})
		dropped = res.RowsAffected
		return res.Error
	})
	return dropped, err
}

// OutboxBatch returns up to limit of the oldest queued entries.
func (s *Store) OutboxBatch(ctx context.Context, limit int) ([]OutboxEntry, error) {
	var out []OutboxEntry
	err := s.db.WithContext(ctx).Order("id").Limit(limit).Find(&out).Error
	return out, s.classify(err)
}

// OutboxLen returns how many entries are queued.
func (s *Store) OutboxLen(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&OutboxEntry{}).Count(&n).Error
	return n, s.classify(err)
}

// DeleteOutbox removes delivered entries.
func (s *Store) DeleteOutbox(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	return s.classify(s.db.WithContext(ctx).Where("id IN ?", ids).Delete(&OutboxEntry{}).Error)
}

// MarkOutboxAttempt counts a failed delivery of the entries.
func (s *Store) MarkOutboxAttempt(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	return s.classify(s.db.WithContext(ctx).Model(&OutboxEntry{}).Where("id IN ?", ids).
		UpdateColumn("attempts", gorm.Expr("attempts + 1")).Error)
}

// ControlPlaneState returns a named value of the control-plane link, or ErrNotFound.
func (s *Store) ControlPlaneState(ctx context.Context, name string) (string, error) {
	var st controlPlaneState
	err := s.db.WithContext(ctx).Where("name = ?", name).Take(&st).Error
	return st.Value, s.classify(err)
}

// SetControlPlaneState stores a named value of the control-plane link.
func (s *Store) SetControlPlaneState(ctx context.Context, name, value string) error {
	st := controlPlaneState{Name: name, Value: value, UpdatedAt: s.now().UTC()}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "name"}},
		DoUpdates: clause.AssignmentColumns([]string{"value", "updated_at"}),
	}).Create(&st).Error
	return s.classify(err)
}

// ConnectionCount is the number of connections of one provider in one status.
type ConnectionCount struct {
	WorkspaceID string
	Provider    string
	Status      string
	N           int
}

// ConnectionCounts counts connections per workspace, provider and status.
func (s *Store) ConnectionCounts(ctx context.Context) ([]ConnectionCount, error) {
	var out []ConnectionCount
	err := s.db.WithContext(ctx).Model(&Connection{}).
		Select("workspace_id, provider, status, COUNT(*) AS n").
		Group("workspace_id, provider, status").Order("workspace_id, provider, status").
		Scan(&out).Error
	return out, s.classify(err)
}

// PutProviders creates or replaces several providers (by workspace and key) in one
// transaction with the audit events: all are written or none. A replaced provider keeps
// its id, its creation time and its client secret: this never writes a client secret.
// guard, when set, sees each provider under its row lock with the row as stored (nil
// when the key is new); its error aborts the whole write and is returned as is.
func (s *Store) PutProviders(ctx context.Context, ps []Provider, guard func(stored *Provider, next Provider) error, evs ...audit.Event) ([]Provider, error) {
	out := make([]Provider, len(ps))
	copy(out, ps)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		for i := range out {
			p := &out[i]
			var existing Provider
			err := s.forUpdate(tx.Where("workspace_id = ? AND key = ?", p.WorkspaceID, p.Key)).Take(&existing).Error
			if guard != nil && (err == nil || errors.Is(err, gorm.ErrRecordNotFound)) {
				stored := &existing
				if err != nil {
					stored = nil
				}
				if gerr := guard(stored, *p); gerr != nil {
					return gerr
				}
			}
			switch {
			case err == nil:
				p.ID, p.CreatedAt = existing.ID, existing.CreatedAt
				if err := tx.Model(&Provider{}).Where("id = ?", p.ID).
					Updates(map[string]any{"auth_mode": p.AuthMode, "config": p.Config, "updated_at": p.UpdatedAt}).Error; err != nil {
					return err
				}
			case errors.Is(err, gorm.ErrRecordNotFound):
				if err := tx.Create(p).Error; err != nil {
					return err
				}
			default:
				return err
			}
		}
		return s.appendEvents(tx, evs)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

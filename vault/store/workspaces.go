package store

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault"
)

// DefaultWorkspaceID is the id of the workspace named "default" that always exists.
const DefaultWorkspaceID = ids.DefaultWorkspace

// EnsureDefaultWorkspace creates the workspace "default" if it is missing.
func (s *Store) EnsureDefaultWorkspace(ctx context.Context) error {
	ws := Workspace{ID: DefaultWorkspaceID, Name: "default", CreatedAt: s.now().UTC()}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&ws).Error
	return s.classify(err)
}

// CreateWorkspace stores a new workspace with its DEKs and first API key, and the audit
// events, in one transaction: a failure leaves nothing behind. A name already taken is
// ErrConflict.
func (s *Store) CreateWorkspace(ctx context.Context, ws Workspace, deks []vault.DEKRecord, key APIKey, evs ...audit.Event) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&ws).Error; err != nil {
			return err
		}
		for _, d := range deks {
			if err := tx.Create(toDEKRow(d, 1)).Error; err != nil {
				return err
			}
		}
		if err := tx.Create(&key).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	})
}

// Workspace returns a workspace by id.
func (s *Store) Workspace(ctx context.Context, id string) (Workspace, error) {
	var ws Workspace
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&ws).Error
	return ws, s.classify(err)
}

// ListWorkspaces returns every workspace, oldest first.
func (s *Store) ListWorkspaces(ctx context.Context) ([]Workspace, error) {
	var out []Workspace
	err := s.db.WithContext(ctx).Order("created_at, id").Find(&out).Error
	return out, s.classify(err)
}

func toDEKRow(d vault.DEKRecord, generation int) *dekRow {
	return &dekRow{ID: d.ID, WorkspaceID: d.WorkspaceID, Purpose: string(d.Purpose), Generation: generation,
		KEKID: d.KEKID, KEKVersion: d.KEKVersion, Wrapped: d.Wrapped, CreatedAt: d.CreatedAt.UTC()}
}

func (r dekRow) record() vault.DEKRecord {
	return vault.DEKRecord{ID: r.ID, WorkspaceID: r.WorkspaceID, Purpose: vault.Purpose(r.Purpose),
		KEKID: r.KEKID, KEKVersion: r.KEKVersion, Wrapped: r.Wrapped, CreatedAt: r.CreatedAt}
}

var _ vault.DEKStore = (*Store)(nil)

// ActiveDEK implements vault.DEKStore: the newest DEK of the workspace and purpose.
func (s *Store) ActiveDEK(ctx context.Context, workspaceID string, purpose vault.Purpose) (vault.DEKRecord, error) {
	var r dekRow
	err := s.db.WithContext(ctx).Where("workspace_id = ? AND purpose = ?", workspaceID, string(purpose)).
		Order("generation DESC").Take(&r).Error
	if err != nil {
		return vault.DEKRecord{}, s.classify(err)
	}
	return r.record(), nil
}

// DEK implements vault.DEKStore.
func (s *Store) DEK(ctx context.Context, id string) (vault.DEKRecord, error) {
	var r dekRow
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&r).Error; err != nil {
		return vault.DEKRecord{}, s.classify(err)
	}
	return r.record(), nil
}

// InsertDEK implements vault.DEKStore: the first DEK of a workspace and purpose.
func (s *Store) InsertDEK(ctx context.Context, rec vault.DEKRecord) error {
	err := s.classify(s.db.WithContext(ctx).Create(toDEKRow(rec, 1)).Error)
	if errors.Is(err, ErrConflict) {
		return fmt.Errorf("%w: %w", vault.ErrDEKExists, err)
	}
	return err
}

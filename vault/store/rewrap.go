package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault"
)

// KEK rotation (vault.Rewrap) and crypto-shredding: the queries over the deks table that
// re-wrap DEKs with compare-and-swap, the persisted rotation progress, and deletion of a
// workspace's wrapped DEKs.

var _ vault.RewrapStore = (*Store)(nil)

// DEKsToRewrap implements vault.RewrapStore: up to limit DEKs of the purpose not wrapped
// by kekID, with ids after afterID, in id order.
func (s *Store) DEKsToRewrap(ctx context.Context, purpose vault.Purpose, kekID, afterID string, limit int) ([]vault.DEKRecord, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("store: DEKsToRewrap: limit must be positive")
	}
	var rows []dekRow
	err := s.db.WithContext(ctx).Where("purpose = ? AND kek_id <> ? AND id > ?", string(purpose), kekID, afterID).
		Order("id").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, s.classify(err)
	}
	out := make([]vault.DEKRecord, len(rows))
	for i, r := range rows {
		out[i] = r.record()
	}
	return out, nil
}

// CountDEKsToRewrap implements vault.RewrapStore.
func (s *Store) CountDEKsToRewrap(ctx context.Context, purpose vault.Purpose, kekID string) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&dekRow{}).Where("purpose = ? AND kek_id <> ?", string(purpose), kekID).Count(&n).Error
	return n, s.classify(err)
}

// CountDEKsByKEK counts the deployment's wrapped DEKs (both purposes) by the id of the
// KEK that wrapped them.
func (s *Store) CountDEKsByKEK(ctx context.Context) (map[string]int64, error) {
	var rows []struct {
		KEKID string `gorm:"column:kek_id"`
		N     int64  `gorm:"column:n"`
	}
	err := s.db.WithContext(ctx).Model(&dekRow{}).Select("kek_id, COUNT(*) AS n").Group("kek_id").Scan(&rows).Error
	if err != nil {
		return nil, s.classify(err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.KEKID] = r.N
	}
	return out, nil
}

// SwapWrapped replaces the wrapped form of DEK id with next's, if the row still has
// oldKEKID and oldWrapped (compare-and-swap), and appends kek.rotated to the workspace's
// chain in the same transaction. It reports whether the swap happened: false means a
// concurrent writer changed or deleted the DEK, which is then left as that writer made it.
func (s *Store) SwapWrapped(ctx context.Context, id, oldKEKID string, oldWrapped []byte, next vault.DEKRecord) (bool, error) {
	next.ID = id
	ok, err := s.SwapWrappedBatch(ctx, []vault.DEKSwap{{
		Old: vault.DEKRecord{ID: id, WorkspaceID: next.WorkspaceID, Purpose: next.Purpose, KEKID: oldKEKID, Wrapped: oldWrapped},
		New: next,
	}}, "system")
	if err != nil {
		return false, err
	}
	return ok[0], nil
}

// SwapWrappedBatch implements vault.RewrapStore: every swap is a compare-and-swap on
// (id, kek_id, wrapped), and each workspace with a DEK swapped gets one kek.rotated event
// (purpose, new KEK id, the previous KEK ids, the DEK ids) in the same transaction, so a
// re-wrap is never committed unaudited and a batch killed midway leaves no trace.
func (s *Store) SwapWrappedBatch(ctx context.Context, swaps []vault.DEKSwap, actor string) ([]bool, error) {
	for _, sw := range swaps {
		if sw.New.ID != sw.Old.ID || sw.New.WorkspaceID != sw.Old.WorkspaceID || sw.New.Purpose != sw.Old.Purpose {
			return nil, fmt.Errorf("store: a swap may change only the wrapping of a DEK (DEK %s)", sw.Old.ID)
		}
	}
	var swapped []bool
	err := s.tx(ctx, func(tx *gorm.DB) error {
		swapped = make([]bool, len(swaps))
		now := s.now().UTC()
		byWS := map[string]*rotatedData{}
		var order []string
		for i, sw := range swaps {
			res := tx.Model(&dekRow{}).
				Where("id = ? AND kek_id = ? AND wrapped = ?", sw.Old.ID, sw.Old.KEKID, sw.Old.Wrapped).
				Updates(map[string]any{"kek_id": sw.New.KEKID, "kek_version": sw.New.KEKVersion,
					"wrapped": sw.New.Wrapped, "rewrapped_at": now})
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected != 1 {
				continue
			}
			swapped[i] = true
			d := byWS[sw.Old.WorkspaceID]
			if d == nil {
				d = &rotatedData{Purpose: string(sw.New.Purpose), KEKID: sw.New.KEKID}
				byWS[sw.Old.WorkspaceID] = d
				order = append(order, sw.Old.WorkspaceID)
			}
			d.DEKs = append(d.DEKs, sw.Old.ID)
			if !slices.Contains(d.Previous, sw.Old.KEKID) {
				d.Previous = append(d.Previous, sw.Old.KEKID)
			}
		}
		evs := make([]audit.Event, 0, len(order))
		for _, ws := range order {
			data, err := json.Marshal(byWS[ws])
			if err != nil {
				return err
			}
			evs = append(evs, audit.Event{WorkspaceID: ws, At: now, Type: audit.KEKRotated, Actor: actor,
				Outcome: audit.Success, Data: string(data)})
		}
		return s.appendEvents(tx, evs)
	})
	if err != nil {
		return nil, err
	}
	return swapped, nil
}

// rotatedData is the Data of a kek.rotated event: identifiers only.
type rotatedData struct {
	Purpose  string   `json:"purpose"`
	KEKID    string   `json:"kek_id"`
	Previous []string `json:"previous_kek_ids"`
	DEKs     []string `json:"dek_ids"`
}

// kekRotationRow is the persisted progress of one purpose's rotation.
type kekRotationRow struct {
	Purpose    string `gorm:"primaryKey"`
	KEKID      string `gorm:"column:kek_id"`
	State      string
	Done       int64
	Total      int64
	Failed     int64
	LastDEKID  string `gorm:"column:last_dek_id"`
	StartedAt  time.Time
	UpdatedAt  time.Time `gorm:"autoUpdateTime:false"`
	FinishedAt *time.Time
}

func (kekRotationRow) TableName() string { return "kek_rotations" }

// RotationProgress implements vault.RewrapStore.
func (s *Store) RotationProgress(ctx context.Context, purpose vault.Purpose) (vault.Progress, error) {
	var r kekRotationRow
	if err := s.db.WithContext(ctx).Where("purpose = ?", string(purpose)).Take(&r).Error; err != nil {
		return vault.Progress{}, s.classify(err)
	}
	p := vault.Progress{Purpose: vault.Purpose(r.Purpose), KEKID: r.KEKID, State: vault.RotationState(r.State),
		Done: r.Done, Total: r.Total, Failed: r.Failed, Cursor: r.LastDEKID,
		StartedAt: r.StartedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if r.FinishedAt != nil {
		p.FinishedAt = r.FinishedAt.UTC()
	}
	return p, nil
}

// SaveRotationProgress implements vault.RewrapStore (an upsert by purpose).
func (s *Store) SaveRotationProgress(ctx context.Context, p vault.Progress) error {
	if p.State != vault.RotationRunning && p.State != vault.RotationDone {
		return fmt.Errorf("store: rotation state %q cannot be saved", p.State)
	}
	r := kekRotationRow{Purpose: string(p.Purpose), KEKID: p.KEKID, State: string(p.State), Done: p.Done,
		Total: p.Total, Failed: p.Failed, LastDEKID: p.Cursor, StartedAt: p.StartedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC()}
	if !p.FinishedAt.IsZero() {
		t := p.FinishedAt.UTC()
		r.FinishedAt = &t
	}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "purpose"}},
		DoUpdates: clause.AssignmentColumns([]string{"kek_id", "state", "done", "total", "failed", "last_dek_id", "started_at", "updated_at", "finished_at"}),
	}).Create(&r).Error
	return s.classify(err)
}

// DeleteWorkspaceDEKs deletes every wrapped DEK of the workspace, both purposes
// (crypto-shredding): once the rows are gone, and the keyrings have Forget the workspace,
// nothing can open its ciphertext again. It returns how many DEKs were deleted.
func (s *Store) DeleteWorkspaceDEKs(ctx context.Context, workspaceID string) (int64, error) {
	if workspaceID == "" {
		return 0, fmt.Errorf("store: DeleteWorkspaceDEKs: empty workspace id")
	}
	res := s.db.WithContext(ctx).Where("workspace_id = ?", workspaceID).Delete(&dekRow{})
	return res.RowsAffected, s.classify(res.Error)
}

package store

// Audit chains against signed checkpoints: the heads that checkpoints sign, and pruning
// past retention, which keeps the chain verifiable by leaving a signed anchor.
// Verification is audit_verify.go.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

type auditAnchor struct {
	WorkspaceID string `gorm:"primaryKey"`
	Seq         int64
	Hash        string
	EventID     string
	Checkpoint  string
	CreatedAt   time.Time
}

func (auditAnchor) TableName() string { return "audit_anchors" }

// ErrChainBroken: the audit chain does not verify, so it is not pruned (that would
// destroy the evidence).
var ErrChainBroken = errors.New("store: audit chain does not verify")

// ChainHead is a workspace's recorded audit head.
type ChainHead struct {
	WorkspaceID string
	Seq         int64
	Hash        string
	EventID     string
}

// AuditHeads returns the head of every workspace's chain (what checkpoints sign).
func (s *Store) AuditHeads(ctx context.Context) ([]ChainHead, error) {
	var rows []auditHead
	if err := s.db.WithContext(ctx).Order("workspace_id").Find(&rows).Error; err != nil {
		return nil, s.classify(err)
	}
	out := make([]ChainHead, len(rows))
	for i, r := range rows {
		out[i] = ChainHead(r)
	}
	return out, nil
}

// PruneAudit deletes a workspace's events older than cutoff, in batches, keeping the chain
// verifiable: each batch's last event becomes the retained anchor, a checkpoint signed by
// signer, in the transaction that deletes the batch. A chain that does not verify is not
// pruned (ErrChainBroken). The pruning is recorded as audit.pruned. It returns how many
// events went and the final anchor (nil when nothing was pruned), which the caller should
// also write where checkpoints go. With dryRun it only counts.
func (s *Store) PruneAudit(ctx context.Context, workspaceID string, cutoff time.Time, signer *audit.Signer, batch int, dryRun bool) (int64, *audit.Checkpoint, error) {
	if batch <= 0 {
		batch = 1000
	}
	var through struct{ Seq *int64 }
	if err := s.db.WithContext(ctx).Model(&auditRow{}).Select("MAX(seq) AS seq").
		Where("workspace_id = ? AND at < ?", workspaceID, cutoff.UTC()).Scan(&through).Error; err != nil {
		return 0, nil, s.classify(err)
	}
	if through.Seq == nil {
		return 0, nil, nil
	}
	if dryRun {
		var n int64
		err := s.db.WithContext(ctx).Model(&auditRow{}).Where("workspace_id = ? AND seq <= ?", workspaceID, *through.Seq).Count(&n).Error
		return n, nil, s.classify(err)
	}
	if signer == nil {
		return 0, nil, errors.New("store: PruneAudit needs the checkpoint signer")
	}
	res, err := s.VerifyAuditCheckpoints(ctx, workspaceID, nil, signer.KeyID())
	if err != nil {
		return 0, nil, err
	}
	if !res.OK {
		return 0, nil, fmt.Errorf("%w: workspace %s, first bad event %s", ErrChainBroken, workspaceID, res.FirstBadEvent)
	}
	var total int64
	var last *audit.Checkpoint
	for from := res.StartSeq; from < *through.Seq; {
		upTo := min(from+int64(batch), *through.Seq)
		done := upTo == *through.Seq
		var n int64
		err := s.tx(ctx, func(tx *gorm.DB) error {
			var e auditRow
			if err := tx.Where("workspace_id = ? AND seq = ?", workspaceID, upTo).Take(&e).Error; err != nil {
				return err
			}
			cp := signer.Sign(workspaceID, e.Seq, e.Hash, e.ID, s.now())
			a := auditAnchor{WorkspaceID: workspaceID, Seq: e.Seq, Hash: e.Hash, EventID: e.ID,
				Checkpoint: string(cp.Line()[:len(cp.Line())-1]), CreatedAt: s.now().UTC()}
			if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "workspace_id"}},
				DoUpdates: clause.AssignmentColumns([]string{"seq", "hash", "event_id", "checkpoint", "created_at"})}).Create(&a).Error; err != nil {
				return err
			}
			r := tx.Where("workspace_id = ? AND seq <= ?", workspaceID, upTo).Delete(&auditRow{})
			if r.Error != nil {
				return r.Error
			}
			n, last = r.RowsAffected, &cp
			if !done {
				return nil
			}
			return s.appendEvents(tx, []audit.Event{{WorkspaceID: workspaceID, Type: audit.AuditPruned, Actor: PurgeActor,
				Outcome: audit.Success, Data: lifecycleData("through_seq", upTo, "anchor_kid", cp.KeyID)}})
		})
		if err != nil {
			return total, last, err
		}
		total += n
		from = upTo
	}
	return total, last, nil
}

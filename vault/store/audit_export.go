package store

import (
	"context"
	"errors"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// AuditExport reads one workspace's retained chain for an export (docs/formats.md, "Audit
// export file"): begin gets its start — genesis, or the retained anchor of a pruned chain
// with that anchor's signed checkpoint line — and its recorded head; fn gets every event
// from the start to the head in seq order, read in batches.
func (s *Store) AuditExport(ctx context.Context, workspaceID string,
	begin func(start ChainHead, startCheckpoint string, head ChainHead) error, fn func(audit.Event) error) error {
	db := s.db.WithContext(ctx)
	var head auditHead
	switch err := db.Where("workspace_id = ?", workspaceID).Take(&head).Error; {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return ErrNotFound
	case err != nil:
		return s.classify(err)
	}
	start := ChainHead{WorkspaceID: workspaceID, Hash: audit.GenesisHash}
	var startCheckpoint string
	var anchor auditAnchor
	switch err := db.Where("workspace_id = ?", workspaceID).Take(&anchor).Error; {
	case err == nil:
		start = ChainHead{WorkspaceID: workspaceID, Seq: anchor.Seq, Hash: anchor.Hash, EventID: anchor.EventID}
		startCheckpoint = anchor.Checkpoint
	case !errors.Is(err, gorm.ErrRecordNotFound):
		return s.classify(err)
	}
	if err := begin(start, startCheckpoint, ChainHead(head)); err != nil {
		return err
	}
	last := start.Seq
	var batch []auditRow
	for last < head.Seq {
		batch = batch[:0]
		err := db.Where("workspace_id = ? AND seq > ? AND seq <= ?", workspaceID, last, head.Seq).
			Order("seq").Limit(1000).Find(&batch).Error
		if err != nil {
			return s.classify(err)
		}
		for _, r := range batch {
			if err := fn(audit.Event(r)); err != nil {
				return err
			}
		}
		if len(batch) < 1000 {
			return nil
		}
		last = batch[len(batch)-1].Seq
	}
	return nil
}

package store

// Verification of a workspace's audit chain: from genesis, or from a signed start (the
// retained anchor a pruning left, or the checkpoint of the head the last verification
// reached), to the recorded head, optionally against signed checkpoints kept outside the
// database. A signed start counts only when one of the deployment's checkpoint keys
// signed it: whoever can write the database can sign a checkpoint with a key of their
// own, so a self-signed start is refused, never trusted.
//
// audit_verifications keeps, per workspace, the signed checkpoint of the last verified
// head and the lease that lets one verification run at a time across replicas.

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

type auditVerification struct {
	WorkspaceID string `gorm:"primaryKey"`
	Seq         int64
	Hash        string
	EventID     string
	Checkpoint  string
	VerifiedAt  *time.Time
	LeaseOwner  string
	LeaseUntil  *time.Time
}

func (auditVerification) TableName() string { return "audit_verifications" }

// AuditResult is the outcome of verifying a chain against its signed start and signed
// checkpoints.
type AuditResult struct {
	VerifyResult
	// Reason says why a chain failed, in words (no event content).
	Reason string
	// StartSeq is where verification started: 0 (genesis), the retained anchor, or the
	// last verified checkpoint.
	StartSeq int64
	// HeadSeq and HeadEventID name the recorded head the chain was verified to.
	HeadSeq     int64
	HeadEventID string
}

// VerifyScope says how a chain is verified.
type VerifyScope struct {
	// Checkpoints are signed checkpoints kept outside the database (already verified by
	// the caller, audit.ReadCheckpoints).
	Checkpoints []audit.Checkpoint
	// Trusted are the key ids of the deployment's checkpoint keys; a signed start signed
	// by any other key (or when Trusted is empty, by any key) is refused.
	Trusted []string
	// Incremental starts from the checkpoint of the last verified head when there is one
	// (RecordAuditVerified), so only the events after it are hashed.
	Incremental bool
}

// VerifyAudit recomputes a workspace's chain from genesis, or from the retained anchor of
// a pruned chain signed by one of trusted, and compares its end with the recorded head, so
// an edited, reordered or deleted event, or a deleted tail, shows.
func (s *Store) VerifyAudit(ctx context.Context, workspaceID string, trusted ...string) (VerifyResult, error) {
	r, err := s.VerifyAuditChain(ctx, workspaceID, VerifyScope{Trusted: trusted})
	return r.VerifyResult, err
}

// VerifyAuditCheckpoints verifies a workspace's chain in full (from genesis or its
// retained anchor) against cps: a checkpoint beyond the end of the chain shows a deleted
// tail, one whose seq is on the chain with another hash shows a rewritten (re-chained)
// log. The anchor must be signed by one of trusted.
func (s *Store) VerifyAuditCheckpoints(ctx context.Context, workspaceID string, cps []audit.Checkpoint, trusted ...string) (AuditResult, error) {
	return s.VerifyAuditChain(ctx, workspaceID, VerifyScope{Checkpoints: cps, Trusted: trusted})
}

// VerifyAuditChain verifies a workspace's chain as sc says, up to the head recorded when
// it starts (events appended meanwhile are left to the next verification).
func (s *Store) VerifyAuditChain(ctx context.Context, workspaceID string, sc VerifyScope) (AuditResult, error) {
	db := s.db.WithContext(ctx)
	var head auditHead
	switch err := db.Where("workspace_id = ?", workspaceID).Take(&head).Error; {
	case errors.Is(err, gorm.ErrRecordNotFound):
		head = auditHead{Hash: audit.GenesisHash}
	case err != nil:
		return AuditResult{}, s.classify(err)
	}
	startSeq, startHash := int64(0), audit.GenesisHash
	var anchor auditAnchor
	switch err := db.Where("workspace_id = ?", workspaceID).Take(&anchor).Error; {
	case err == nil:
		if !signedStart(anchor.Checkpoint, workspaceID, anchor.Seq, anchor.Hash, sc.Trusted) {
			return AuditResult{VerifyResult: VerifyResult{FirstBadEvent: anchor.EventID}, StartSeq: anchor.Seq,
				Reason: "the retained anchor of the pruned chain is not signed by a checkpoint key of this deployment"}, nil
		}
		startSeq, startHash = anchor.Seq, anchor.Hash
	case !errors.Is(err, gorm.ErrRecordNotFound):
		return AuditResult{}, s.classify(err)
	}
	if sc.Incremental {
		var last auditVerification
		err := db.Where("workspace_id = ? AND checkpoint <> ''", workspaceID).Take(&last).Error
		switch {
		case err == nil:
			if !signedStart(last.Checkpoint, workspaceID, last.Seq, last.Hash, sc.Trusted) {
				return AuditResult{VerifyResult: VerifyResult{FirstBadEvent: last.EventID}, StartSeq: last.Seq,
					Reason: "the checkpoint of the last verification is not signed by a checkpoint key of this deployment"}, nil
			}
			if last.Seq > startSeq {
				startSeq, startHash = last.Seq, last.Hash
			}
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return AuditResult{}, s.classify(err)
		}
	}
	v := audit.NewVerifierFrom(startSeq, startHash)
	w := audit.NewWitness(audit.ForWorkspace(sc.Checkpoints, workspaceID), startSeq, startHash)
	lastSeq := startSeq
	var batch []auditRow
	for lastSeq < head.Seq {
		batch = batch[:0]
		err := db.Where("workspace_id = ? AND seq > ? AND seq <= ?", workspaceID, lastSeq, head.Seq).
			Order("seq").Limit(1000).Find(&batch).Error
		if err != nil {
			return AuditResult{}, s.classify(err)
		}
		for _, r := range batch {
			if !v.Add(audit.Event(r)) {
				break
			}
			w.Observe(audit.Event(r))
		}
		if len(batch) < 1000 || !okSoFar(v) {
			break
		}
		lastSeq = batch[len(batch)-1].Seq
	}
	out := AuditResult{StartSeq: startSeq, HeadSeq: head.Seq, HeadEventID: head.EventID}
	if !v.CheckHead(head.Seq, head.Hash, head.EventID) {
		out.Reason = "the chain does not link, or ends before its recorded head"
	}
	ok, n, h, bad := v.Result()
	out.VerifyResult = VerifyResult{OK: ok, Events: n, Head: h, FirstBadEvent: bad}
	if ok {
		if wok, wbad, reason := w.Finish(); !wok {
			out.OK, out.FirstBadEvent, out.Reason = false, wbad, reason
		}
	}
	return out, nil
}

// signedStart reports whether line is a checkpoint of (workspaceID, seq, hash) signed by
// one of trusted.
func signedStart(line, workspaceID string, seq int64, hash string, trusted []string) bool {
	var cp audit.Checkpoint
	return len(trusted) > 0 && json.Unmarshal([]byte(line), &cp) == nil && cp.Verify(trusted...) == nil &&
		cp.WorkspaceID == workspaceID && cp.Seq == seq && cp.Hash == hash
}

// RecordAuditVerified keeps cp, the signed checkpoint of a head a verification reached, as
// the start of the workspace's next incremental verification; a checkpoint behind the one
// kept is ignored.
func (s *Store) RecordAuditVerified(ctx context.Context, cp audit.Checkpoint) error {
	line := cp.Line()
	now := s.now().UTC()
	row := auditVerification{WorkspaceID: cp.WorkspaceID, Seq: cp.Seq, Hash: cp.Hash, EventID: cp.EventID,
		Checkpoint: string(line[:len(line)-1]), VerifiedAt: &now}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "workspace_id"}},
		Where:     clause.Where{Exprs: []clause.Expression{clause.Expr{SQL: "audit_verifications.seq <= excluded.seq"}}},
		DoUpdates: clause.AssignmentColumns([]string{"seq", "hash", "event_id", "checkpoint", "verified_at"})}).Create(&row).Error
	return s.classify(err)
}

// ClaimAuditVerification takes the workspace's verification lease for owner until until,
// unless another owner holds an unexpired one (false). Renewing is claiming again.
func (s *Store) ClaimAuditVerification(ctx context.Context, workspaceID, owner string, until time.Time) (bool, error) {
	db := s.db.WithContext(ctx)
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&auditVerification{WorkspaceID: workspaceID}).Error; err != nil {
		return false, s.classify(err)
	}
	now := s.now().UTC()
	r := db.Model(&auditVerification{}).
		Where("workspace_id = ? AND (lease_owner = ? OR lease_owner = '' OR lease_until IS NULL OR lease_until < ?)", workspaceID, owner, now).
		Updates(map[string]any{"lease_owner": owner, "lease_until": until.UTC()})
	if r.Error != nil {
		return false, s.classify(r.Error)
	}
	return r.RowsAffected == 1, nil
}

// ReleaseAuditVerification gives up owner's lease.
func (s *Store) ReleaseAuditVerification(ctx context.Context, workspaceID, owner string) error {
	err := s.db.WithContext(ctx).Model(&auditVerification{}).Where("workspace_id = ? AND lease_owner = ?", workspaceID, owner).
		Updates(map[string]any{"lease_owner": "", "lease_until": nil}).Error
	return s.classify(err)
}

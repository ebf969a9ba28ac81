package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// ListAudit returns up to limit events of a workspace's chain after the event afterID
// ("" from the start), oldest first.
func (s *Service) ListAudit(ctx context.Context, workspaceID, afterID string, limit int) ([]audit.Event, error) {
	evs, err := s.store.ListAudit(ctx, workspaceID, afterID, limit)
	if errors.Is(err, store.ErrNotFound) {
		return nil, problem.ErrInvalidRequest.WithField("after", "no such event in this workspace")
	}
	return evs, err
}

// ChainVerification is the outcome of verifying one workspace's audit chain.
type ChainVerification struct {
	WorkspaceID string
	store.AuditResult
	// Checkpoints is how many of the given checkpoints are this workspace's.
	Checkpoints int
}

// One verification of a workspace's chain runs at a time, across replicas: it holds the
// workspace's lease in audit_verifications, renewed every third of verifyLease while it
// runs (a replica that dies mid-verification blocks the next one for at most verifyLease).
const (
	verifyLease      = 30 * time.Second
	verifyRetryAfter = 5 // seconds
)

// VerifyAudit verifies one workspace's chain to its recorded head. Unless full, it starts
// from the signed checkpoint of the head the last verification reached (or the retained
// anchor of a pruned chain), so only the events since are hashed; with full, from genesis
// or the anchor. Every signed start must be signed by one of the deployment's checkpoint
// keys. While another verification of the workspace runs it answers 429 rate_limited with
// Retry-After. A chain that verifies has its head signed and kept as the next start.
func (s *Service) VerifyAudit(ctx context.Context, workspaceID string, full bool) (store.AuditResult, error) {
	owner := ids.Random(16)
	claimed, err := s.store.ClaimAuditVerification(ctx, workspaceID, owner, s.now().Add(verifyLease))
	if err != nil {
		return store.AuditResult{}, err
	}
	if !claimed {
		return store.AuditResult{}, problem.ErrRateLimited.
			WithDetail("a verification of this workspace's audit chain is running").WithRetryAfter(verifyRetryAfter)
	}
	done := make(chan struct{})
	renewed := make(chan struct{})
	go func() { // keeps the lease while the verification runs
		defer close(renewed)
		t := time.NewTicker(verifyLease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if _, err := s.store.ClaimAuditVerification(ctx, workspaceID, owner, s.now().Add(verifyLease)); err != nil {
					s.log.WarnContext(ctx, "audit verification lease", "workspace", workspaceID, "err", err)
				}
			}
		}
	}()
	defer func() {
		close(done)
		<-renewed
		if err := s.store.ReleaseAuditVerification(context.WithoutCancel(ctx), workspaceID, owner); err != nil {
			s.log.WarnContext(ctx, "audit verification lease", "workspace", workspaceID, "err", err)
		}
	}()
	return s.verifyChain(ctx, workspaceID, !full)
}

// verifyChain verifies a workspace's chain, signed starts checked against the
// deployment's checkpoint keys, and keeps the signed checkpoint of the head it verified.
func (s *Service) verifyChain(ctx context.Context, workspaceID string, incremental bool) (store.AuditResult, error) {
	signer, err := s.checkpoints.Signer(ctx) // the first checkpoint key is made here when there is none
	if err != nil {
		return store.AuditResult{}, err
	}
	trusted, err := s.checkpoints.TrustedKeyIDs(ctx)
	if err != nil {
		return store.AuditResult{}, err
	}
	res, err := s.store.VerifyAuditChain(ctx, workspaceID, store.VerifyScope{Trusted: trusted, Incremental: incremental})
	if err != nil || !res.OK || res.HeadSeq == 0 {
		return res, err
	}
	return res, s.store.RecordAuditVerified(ctx, signer.Sign(workspaceID, res.HeadSeq, res.Head, res.HeadEventID, s.now()))
}

// VerifyAuditChains verifies in full the chain of one workspace (only), or of every
// workspace that has one.
func (s *Service) VerifyAuditChains(ctx context.Context, only string) ([]ChainVerification, error) {
	list := []string{only}
	if only == "" {
		var err error
		if list, err = s.store.AuditWorkspaces(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]ChainVerification, 0, len(list))
	for _, w := range list {
		res, err := s.verifyChain(ctx, w, false)
		if err != nil {
			return out, err
		}
		out = append(out, ChainVerification{WorkspaceID: w, AuditResult: res})
	}
	return out, nil
}

// VerifyAuditCheckpoints verifies every workspace's chain (or only one) against signed
// checkpoints kept outside the database, whose signatures are by one of the trusted kids
// (audit.ReadCheckpoints checked them). A workspace of the checkpoints without a chain
// must have been deleted on record (a workspace.deleted event in the default chain).
func (s *Service) VerifyAuditCheckpoints(ctx context.Context, cps []audit.Checkpoint, trusted []string, only string) ([]ChainVerification, error) {
	chains, err := s.store.AuditWorkspaces(ctx)
	if err != nil {
		return nil, err
	}
	list := slices.Clone(chains)
	seen := map[string]bool{}
	for _, w := range chains {
		seen[w] = true
	}
	for _, c := range cps {
		if !seen[c.WorkspaceID] {
			seen[c.WorkspaceID] = true
			list = append(list, c.WorkspaceID)
		}
	}
	deleted, err := s.deletedWorkspaces(ctx)
	if err != nil {
		return nil, err
	}
	var out []ChainVerification
	for _, w := range list {
		if only != "" && w != only {
			continue
		}
		res, err := s.store.VerifyAuditCheckpoints(ctx, w, cps, trusted...)
		if err != nil {
			return out, err
		}
		if !slices.Contains(chains, w) && deleted[w] {
			res.OK, res.FirstBadEvent, res.Reason = true, "", "workspace deleted on record"
		}
		out = append(out, ChainVerification{WorkspaceID: w, AuditResult: res, Checkpoints: len(audit.ForWorkspace(cps, w))})
	}
	return out, nil
}

// deletedWorkspaces lists the workspaces whose deletion the default chain records.
func (s *Service) deletedWorkspaces(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	after := ""
	for {
		evs, err := s.store.ListAudit(ctx, store.DefaultWorkspaceID, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			if e.Type != audit.WorkspaceDeleted {
				continue
			}
			var d struct {
				WorkspaceID string `json:"workspace_id"`
			}
			if json.Unmarshal([]byte(e.Data), &d) == nil && d.WorkspaceID != "" {
				out[d.WorkspaceID] = true
			}
		}
		if len(evs) < 1000 {
			return out, nil
		}
		after = evs[len(evs)-1].ID
	}
}

// ExportAudit writes one workspace's retained chain to w as an export that verifies
// without the server or its database (audit.VerifyExport; docs/formats.md): the header,
// every event from the start to the recorded head, and a checkpoint of that head signed
// now with the deployment's checkpoint key. It signs only a chain that verifies — from the
// last signed verification (so a chain rewritten by a database writer is refused, not
// blessed) and, as it is written, from its start to its head — and returns how many events
// it wrote; on an error w holds an unsigned, incomplete export the caller must discard.
func (s *Service) ExportAudit(ctx context.Context, workspaceID string, w io.Writer) (int, error) {
	signer, err := s.CheckpointKeys().Signer(ctx)
	if err != nil {
		return 0, fmt.Errorf("the checkpoint key: %w", err)
	}
	switch res, err := s.verifyChain(ctx, workspaceID, true); {
	case err != nil:
		return 0, err
	case !res.OK:
		return 0, fmt.Errorf("the audit chain of %s does not verify (first bad event %s: %s): not exported", workspaceID, res.FirstBadEvent, res.Reason)
	}
	var v *audit.Verifier
	var x *audit.ExportWriter
	var head store.ChainHead
	n := 0
	err = s.store.AuditExport(ctx, workspaceID, func(start store.ChainHead, startCheckpoint string, h store.ChainHead) error {
		head = h
		v = audit.NewVerifierFrom(start.Seq, start.Hash)
		hdr := audit.ExportHeader{WorkspaceID: workspaceID, ExportedAt: s.now().UTC(),
			Start: audit.ExportPoint{Seq: start.Seq, Hash: start.Hash, EventID: start.EventID},
			Head:  audit.ExportPoint{Seq: h.Seq, Hash: h.Hash, EventID: h.EventID}}
		if startCheckpoint != "" {
			var cp audit.Checkpoint
			if err := json.Unmarshal([]byte(startCheckpoint), &cp); err != nil {
				return fmt.Errorf("the retained anchor's checkpoint: %w", err)
			}
			hdr.StartCheckpoint = &cp
		}
		var err error
		x, err = audit.NewExportWriter(w, hdr)
		return err
	}, func(e audit.Event) error {
		n++
		v.Add(e)
		return x.Event(e)
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, problem.ErrNotFound.WithDetail("no audit chain for workspace " + workspaceID)
	}
	if err != nil {
		return n, err
	}
	if !v.CheckHead(head.Seq, head.Hash, head.EventID) {
		_, _, _, bad := v.Result()
		return n, fmt.Errorf("the audit chain of %s does not verify (first bad event %s): not exported", workspaceID, bad)
	}
	return n, x.Close(signer.Sign(workspaceID, head.Seq, head.Hash, head.EventID, s.now()))
}

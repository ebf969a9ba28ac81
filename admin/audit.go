package admin

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/authpipe/authpipe-proxy/internal/audit"
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

// VerifyAudit verifies one workspace's chain from its retained anchor to its head.
func (s *Service) VerifyAudit(ctx context.Context, workspaceID string) (store.VerifyResult, error) {
	return s.store.VerifyAudit(ctx, workspaceID)
}

// VerifyAuditChains verifies the chain of one workspace (only), or of every workspace
// that has one.
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
		res, err := s.store.VerifyAudit(ctx, w)
		if err != nil {
			return out, err
		}
		out = append(out, ChainVerification{WorkspaceID: w, AuditResult: store.AuditResult{VerifyResult: res}})
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

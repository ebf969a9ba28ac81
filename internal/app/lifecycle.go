package app

// The lifecycle jobs: revocation retries, the purge past retention (connections,
// expired connect sessions, audit events), the deletion of expired DPoP jtis (every
// minute), and signed checkpoints of every audit chain's head written outside the
// database. They run on their own cron in the server, and on
// demand from the CLI (`authpipe-proxy purge`).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Lifecycle schedules (cron specs).
const (
	revokeRetrySchedule = "@every 30s"
	checkpointSchedule  = "@every 1m"
	purgeSchedule       = "@every 1h"
	// Expired DPoP jtis (rows live for at most twice the proof window) go in batches.
	dpopPurgeSchedule = "@every 1m"
	// authpipe_connections: one grouped count, never per scrape.
	connectionCountSchedule = "@every 1m"
)

// lifecycleState is the App's share of the lifecycle.
type lifecycleState struct {
	now func() time.Time

	mu   sync.Mutex
	last map[string]int64 // workspace → seq of the last checkpoint written
}

func (a *App) clock() time.Time {
	if a.lc.now != nil {
		return a.lc.now()
	}
	return time.Now()
}

// PurgeReport is what a purge removed (or, in a dry run, would remove).
type PurgeReport struct {
	Connections int64 // disconnected past AUTHPIPE_RETENTION, with their ciphertext
	Sessions    int64 // expired connect sessions (not counted in a dry run)
	AuditEvents int64 // audit events past AUTHPIPE_AUDIT_RETENTION
	// BrokenChains lists workspaces whose chain does not verify: they are not pruned.
	BrokenChains []string
}

// Purge hard-deletes what is past retention: connections disconnected (or still
// revoke_pending) longer than AUTHPIPE_RETENTION ago with their sealed credentials,
// expired connect sessions, and audit events older than AUTHPIPE_AUDIT_RETENTION (keeping
// each chain verifiable from a signed anchor, which is also written as a checkpoint).
// Every deleted connection and every pruning is audited. With dryRun nothing changes.
func (a *App) Purge(ctx context.Context, dryRun bool) (PurgeReport, error) {
	var r PurgeReport
	now := a.clock()
	var err error
	if r.Connections, err = a.Store.PurgeConnections(ctx, now.Add(-a.Config.Retention), 500, dryRun); err != nil {
		return r, fmt.Errorf("purge connections: %w", err)
	}
	if !dryRun {
		if r.Sessions, err = a.Store.DeleteExpiredConnectSessions(ctx, now); err != nil {
			return r, fmt.Errorf("purge connect sessions: %w", err)
		}
	}
	var signer *audit.Signer
	if !dryRun {
		if signer, err = a.Admin.CheckpointKeys().Signer(ctx); err != nil {
			return r, fmt.Errorf("audit checkpoint key: %w", err)
		}
	}
	wss, err := a.Store.AuditWorkspaces(ctx)
	if err != nil {
		return r, err
	}
	overrides, err := a.Store.AuditRetentionOverrides(ctx)
	if err != nil {
		return r, err
	}
	for _, ws := range wss {
		retention := a.Config.AuditRetention
		if d, ok := overrides[ws]; ok {
			retention = d
		}
		n, anchor, err := a.Store.PruneAudit(ctx, ws, now.Add(-retention), signer, 1000, dryRun)
		switch {
		case errors.Is(err, store.ErrChainBroken):
			a.Log.ErrorContext(ctx, "audit chain does not verify; not pruned", "workspace", ws)
			r.BrokenChains = append(r.BrokenChains, ws)
			continue
		case err != nil:
			return r, fmt.Errorf("prune audit of %s: %w", ws, err)
		}
		r.AuditEvents += n
		if anchor != nil {
			if err := a.writeCheckpoint(ctx, *anchor); err != nil {
				return r, err
			}
		}
	}
	if r.Connections+r.Sessions+r.AuditEvents > 0 || dryRun {
		a.Log.InfoContext(ctx, "purge", "dry_run", dryRun, "connections", r.Connections, "sessions", r.Sessions,
			"audit_events", r.AuditEvents)
	}
	return r, nil
}

// Checkpoints signs the head of every workspace's chain now and writes each checkpoint
// outside the database (AUTHPIPE_AUDIT_CHECKPOINT_FILE, and the log); it returns them.
func (a *App) Checkpoints(ctx context.Context) ([]audit.Checkpoint, error) {
	signer, err := a.Admin.CheckpointKeys().Signer(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint key: %w", err)
	}
	heads, err := a.Store.AuditHeads(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]audit.Checkpoint, 0, len(heads))
	for _, h := range heads {
		cp := signer.Sign(h.WorkspaceID, h.Seq, h.Hash, h.EventID, a.clock())
		if err := a.writeCheckpoint(ctx, cp); err != nil {
			return out, err
		}
		out = append(out, cp)
	}
	return out, nil
}

// WriteCheckpoints signs the head of every workspace's audit chain that moved since the
// last checkpoint this process wrote, and writes each outside the database
// (AUTHPIPE_AUDIT_CHECKPOINT_FILE, and the log). It returns how many it wrote.
func (a *App) WriteCheckpoints(ctx context.Context) (int, error) {
	signer, err := a.Admin.CheckpointKeys().Signer(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit checkpoint key: %w", err)
	}
	heads, err := a.Store.AuditHeads(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, h := range heads {
		a.lc.mu.Lock()
		seen, ok := a.lc.last[h.WorkspaceID]
		a.lc.mu.Unlock()
		if h.Seq == 0 || ok && seen == h.Seq {
			continue
		}
		if err := a.writeCheckpoint(ctx, signer.Sign(h.WorkspaceID, h.Seq, h.Hash, h.EventID, a.clock())); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// writeCheckpoint appends cp to the checkpoint file (0600, created if missing) and logs it:
// operators ship either off the host, where someone with database access cannot reach.
func (a *App) writeCheckpoint(ctx context.Context, cp audit.Checkpoint) error {
	if path := a.Config.AuditCheckpointFile; path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("audit checkpoint file: %w", err)
		}
		_, werr := f.Write(cp.Line())
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("audit checkpoint file: %w", werr)
		}
	}
	if a.ControlPlane != nil {
		// Outside the database, where someone with database access cannot reach: the
		// control plane keeps the signed heads too (metadata only: hashes, ids, signature).
		a.ControlPlane.Emit(ctx, controlplane.Event{Type: controlplane.EventAuditCheckpoint, WorkspaceID: cp.WorkspaceID,
			Checkpoint: &controlplane.AuditCheckpoint{Seq: cp.Seq, Hash: cp.Hash, EventID: cp.EventID, At: cp.At.UTC(),
				KeyID: cp.KeyID, PublicKey: cp.PublicKey, Signature: cp.Signature}})
	}
	a.Log.InfoContext(ctx, "audit checkpoint", "workspace", cp.WorkspaceID, "seq", cp.Seq, "hash", cp.Hash,
		"kid", cp.KeyID, "checkpoint", string(cp.Line()[:len(cp.Line())-1]))
	a.lc.mu.Lock()
	if a.lc.last == nil {
		a.lc.last = map[string]int64{}
	}
	if cp.Seq > a.lc.last[cp.WorkspaceID] {
		a.lc.last[cp.WorkspaceID] = cp.Seq
	}
	a.lc.mu.Unlock()
	return nil
}

// startLifecycle runs the revocation retries, checkpoints and purge on their schedules
// until stop is called. A job still running when its next tick comes is skipped.
func (a *App) startLifecycle(ctx context.Context) (stop func()) {
	c := cron.New(cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
	job := func(name string, timeout time.Duration, fn func(context.Context) error) {
		if _, err := c.AddFunc(map[string]string{"revoke": revokeRetrySchedule, "checkpoint": checkpointSchedule,
			"purge": purgeSchedule, "dpop": dpopPurgeSchedule, "inbound-webhooks": dpopPurgeSchedule,
			"connections": connectionCountSchedule}[name], func() {
			jctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := fn(jctx); err != nil && ctx.Err() == nil {
				a.Log.WarnContext(jctx, "lifecycle job failed", "job", name, "err", err)
			}
		}); err != nil {
			a.Log.Error("lifecycle schedule", "job", name, "err", err)
		}
	}
	job("revoke", 5*time.Minute, func(ctx context.Context) error {
		_, err := a.Revocations.Retry(ctx, 100)
		return err
	})
	job("checkpoint", time.Minute, func(ctx context.Context) error { _, err := a.WriteCheckpoints(ctx); return err })
	job("purge", 30*time.Minute, func(ctx context.Context) error { _, err := a.Purge(ctx, false); return err })
	job("dpop", time.Minute, func(ctx context.Context) error {
		_, err := a.Store.DeleteExpiredDPoPJTIs(ctx, a.clock(), 5000)
		return err
	})
	job("inbound-webhooks", time.Minute, func(ctx context.Context) error { // replay records past their window
		_, err := a.Store.DeleteExpiredInboundWebhookSeen(ctx, a.clock(), 5000)
		return err
	})
	job("connections", time.Minute, a.CountConnections) // and once at start-up, when ready (serve.go)
	c.Start()
	return func() { <-c.Stop().Done() }
}

// CountConnections sets authpipe_connections from one grouped count of the connections
// by status (the lifecycle runs it every minute, and once at start).
func (a *App) CountConnections(ctx context.Context) error {
	counts, err := a.Store.CountConnectionsByStatus(ctx)
	if err != nil {
		return err
	}
	a.Metrics.SetConnections(counts)
	return nil
}

package store

// The credential lifecycle: revocation bookkeeping (disconnect → revoke_pending → deleted
// ciphertext), the purge past retention, GDPR erasure of one end user and workspace
// deletion (crypto-shredding). Every hard delete is recorded in the audit chain in the same
// transaction. Audit-chain pruning is in audit_checkpoints.go.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// Revocation is a pending RFC 7009 revocation of a connection's tokens.
type Revocation struct {
	ConnectionID  string `gorm:"primaryKey"`
	WorkspaceID   string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string // an error code, never a provider's text
	CreatedAt     time.Time
}

// TableName implements gorm's tabler.
func (Revocation) TableName() string { return "revocations" }

// BeginRevoke marks a connection revoke_pending, takes it off the refresh schedule, bumps
// its version (so a refresh in flight cannot commit) and records a revocation due now, with
// evs, in one transaction. started is false, and nothing changes, when the connection is
// already disconnected or revoke_pending.
func (s *Store) BeginRevoke(ctx context.Context, workspaceID, id string, evs ...audit.Event) (c Connection, started bool, err error) {
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.forUpdate(tx.Where("workspace_id = ? AND id = ?", workspaceID, id)).Take(&c).Error; err != nil {
			return err
		}
		if c.Status == StatusDisconnected || c.Status == StatusRevokePending {
			return nil
		}
		now := s.now().UTC()
		if err := bumpConnection(tx, &c, map[string]any{"status": StatusRevokePending, "disconnected_at": now,
			"next_refresh_at": nil}, now); err != nil {
			return err
		}
		c.Status, c.DisconnectedAt, c.NextRefreshAt = StatusRevokePending, &now, nil
		r := Revocation{ConnectionID: id, WorkspaceID: workspaceID, NextAttemptAt: now, CreatedAt: now}
		if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "connection_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"next_attempt_at", "attempts", "last_error"})}).Create(&r).Error; err != nil {
			return err
		}
		started = true
		return s.appendEvents(tx, evs)
	})
	return c, started, notFound(err)
}

// bumpConnection updates c's row with fields, compare-and-swap on its version.
func bumpConnection(tx *gorm.DB, c *Connection, fields map[string]any, now time.Time) error {
	fields["updated_at"], fields["version"] = now, c.Version+1
	res := tx.Model(&Connection{}).Where("id = ? AND version = ?", c.ID, c.Version).Updates(fields)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return ErrConflict
	}
	c.UpdatedAt, c.Version = now, c.Version+1
	return nil
}

// RevokeOutcome is how a revocation attempt ended.
type RevokeOutcome int

// Outcomes of FinishRevoke.
const (
	// Revoked: the provider revoked the tokens; the ciphertext is deleted now.
	Revoked RevokeOutcome = iota + 1
	// NotRevocable: the provider cannot revoke (no endpoint, or a permanent refusal): the
	// sealed credential is kept, unusable, until the retention window ends.
	NotRevocable
	// RetryLater: the provider was unavailable; the connection stays revoke_pending and the
	// revocation is retried at Next.
	RetryLater
)

// RevokeResult is what FinishRevoke records.
type RevokeResult struct {
	Outcome   RevokeOutcome
	Next      time.Time // RetryLater
	ErrorCode string    // RetryLater, NotRevocable
}

// FinishRevoke records the outcome of a revocation attempt of a revoke_pending connection,
// with evs. A connection that is no longer revoke_pending (reconnected, purged) drops its
// revocation and answers ErrConflict.
func (s *Store) FinishRevoke(ctx context.Context, workspaceID, id string, r RevokeResult, evs ...audit.Event) (Connection, error) {
	var c Connection
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.forUpdate(tx.Where("workspace_id = ? AND id = ?", workspaceID, id)).Take(&c).Error; err != nil {
			return err
		}
		if c.Status != StatusRevokePending {
			if err := tx.Where("connection_id = ?", id).Delete(&Revocation{}).Error; err != nil {
				return err
			}
			return ErrConflict
		}
		now := s.now().UTC()
		switch r.Outcome {
		case Revoked, NotRevocable:
			if r.Outcome == Revoked {
				if err := tx.Where("connection_id = ?", id).Delete(&Credential{}).Error; err != nil {
					return err
				}
			}
			if err := tx.Where("connection_id = ?", id).Delete(&Revocation{}).Error; err != nil {
				return err
			}
			if err := bumpConnection(tx, &c, map[string]any{"status": StatusDisconnected}, now); err != nil {
				return err
			}
			c.Status = StatusDisconnected
		case RetryLater:
			err := tx.Model(&Revocation{}).Where("connection_id = ?", id).Updates(map[string]any{
				"attempts": gorm.Expr("attempts + 1"), "next_attempt_at": r.Next.UTC(), "last_error": r.ErrorCode}).Error
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("store: unknown revoke outcome %d", r.Outcome)
		}
		return s.appendEvents(tx, evs)
	})
	return c, notFound(err)
}

// RevocationOf returns a connection's pending revocation.
func (s *Store) RevocationOf(ctx context.Context, id string) (Revocation, error) {
	var r Revocation
	err := s.db.WithContext(ctx).Where("connection_id = ?", id).Take(&r).Error
	return r, s.classify(err)
}

// ClaimRevocations claims up to limit revocations due at now by moving their next attempt
// to claimUntil (so another replica's sweep skips them; SKIP LOCKED on PostgreSQL), and
// returns them.
func (s *Store) ClaimRevocations(ctx context.Context, now, claimUntil time.Time, limit int) ([]Revocation, error) {
	var out []Revocation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		q := tx.Where("next_attempt_at <= ?", now.UTC()).Order("next_attempt_at").Limit(limit)
		if s.dialect == Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		if err := q.Find(&out).Error; err != nil {
			return err
		}
		for _, r := range out {
			if err := tx.Model(&Revocation{}).Where("connection_id = ?", r.ConnectionID).
				Update("next_attempt_at", claimUntil.UTC()).Error; err != nil {
				return err
			}
		}
		return nil
	})
	return out, s.classify(err)
}

// PurgeActor is the actor of the purge job's events.
const PurgeActor = "system:purge"

// PurgeConnections hard-deletes connections disconnected (or still revoke_pending) before
// cutoff, with their sealed credentials, in batches of batch, one transaction per batch,
// each deletion recorded as connection.purged in its workspace's chain. With dryRun it
// only counts.
func (s *Store) PurgeConnections(ctx context.Context, cutoff time.Time, batch int, dryRun bool) (int64, error) {
	if batch <= 0 {
		batch = 500
	}
	where := func(q *gorm.DB) *gorm.DB {
		return q.Where("status IN ? AND disconnected_at IS NOT NULL AND disconnected_at < ?",
			[]string{StatusDisconnected, StatusRevokePending}, cutoff.UTC())
	}
	if dryRun {
		var n int64
		err := where(s.db.WithContext(ctx).Model(&Connection{})).Count(&n).Error
		return n, s.classify(err)
	}
	var total int64
	for {
		var n int
		err := s.tx(ctx, func(tx *gorm.DB) error {
			var conns []Connection
			if err := s.forUpdate(where(tx).Order("disconnected_at, id").Limit(batch)).Find(&conns).Error; err != nil {
				return err
			}
			n = len(conns)
			if n == 0 {
				return nil
			}
			evs := make([]audit.Event, 0, n)
			for _, c := range conns {
				evs = append(evs, audit.Event{WorkspaceID: c.WorkspaceID, Type: audit.ConnectionPurged, Actor: PurgeActor,
					ConnectionID: c.ID, Outcome: audit.Success, Data: lifecycleData("provider", c.Provider, "status", c.Status)})
			}
			if err := deleteConnections(tx, idsOf(conns)); err != nil {
				return err
			}
			return s.appendEvents(tx, evs)
		})
		if err != nil {
			return total, err
		}
		total += int64(n)
		if n < batch {
			return total, nil
		}
	}
}

func idsOf(conns []Connection) []string {
	out := make([]string, len(conns))
	for i, c := range conns {
		out[i] = c.ID
	}
	return out
}

// deleteConnections deletes connections and everything that hangs off them, explicitly
// (not relying on ON DELETE CASCADE being on).
func deleteConnections(tx *gorm.DB, idList []string) error {
	if len(idList) == 0 {
		return nil
	}
	for _, m := range []any{&Credential{}, &Revocation{}, &RefreshState{}} {
		if err := tx.Where("connection_id IN ?", idList).Delete(m).Error; err != nil {
			return err
		}
	}
	return tx.Where("id IN ?", idList).Delete(&Connection{}).Error
}

// lifecycleData encodes key/value pairs as the events' small JSON object.
func lifecycleData(kv ...any) string {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// EndUserConnections returns every connection of one end user of a workspace, with its
// sealed credential (the erasure revokes what it can before deleting).
func (s *Store) EndUserConnections(ctx context.Context, workspaceID, endUserID string) ([]ConnectionCredential, error) {
	var list []string
	err := s.db.WithContext(ctx).Model(&Connection{}).Where("workspace_id = ? AND end_user_id = ?", workspaceID, endUserID).
		Order("id").Pluck("id", &list).Error
	if err != nil {
		return nil, s.classify(err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	return s.connectionsWithCredentials(ctx, list)
}

// EraseEndUser hard-deletes every connection of one end user of a workspace, their sealed
// credentials and the end user's connect sessions, now (GDPR art. 17), with one event per
// connection built by event (which must not carry the end user's credentials). It returns
// how many connections were deleted. Other end users are untouched.
func (s *Store) EraseEndUser(ctx context.Context, workspaceID, endUserID string, event func(Connection) audit.Event) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var conns []Connection
		if err := s.forUpdate(tx.Where("workspace_id = ? AND end_user_id = ?", workspaceID, endUserID)).
			Order("id").Find(&conns).Error; err != nil {
			return err
		}
		evs := make([]audit.Event, 0, len(conns))
		for _, c := range conns {
			evs = append(evs, event(c))
		}
		if err := deleteConnections(tx, idsOf(conns)); err != nil {
			return err
		}
		if err := tx.Where("workspace_id = ? AND end_user_id = ?", workspaceID, endUserID).Delete(&ConnectSession{}).Error; err != nil {
			return err
		}
		n = int64(len(conns))
		return s.appendEvents(tx, evs)
	})
	return n, err
}

// WorkspaceDeletion is what DeleteWorkspace removed.
type WorkspaceDeletion struct {
	DEKs        int64
	Connections int64
	FinalHead   ChainHead // the deleted chain's last head, recorded in the default chain
}

// DeleteWorkspace erases a workspace in one transaction: its wrapped DEKs first
// (crypto-shredding: whatever ciphertext survives anywhere, a backup say, cannot be opened
// again), then its credentials, connections, providers and client secrets, API keys,
// sessions, webhooks and its audit chain; the row last. The deletion, with the deleted
// chain's final head, is appended to the default workspace's chain (by actor), so the
// record of the erasure outlives the workspace. The default workspace cannot be deleted.
// The callers must Forget the workspace in both keyrings afterwards.
func (s *Store) DeleteWorkspace(ctx context.Context, workspaceID, actor string) (WorkspaceDeletion, error) {
	if workspaceID == DefaultWorkspaceID || workspaceID == "" {
		return WorkspaceDeletion{}, fmt.Errorf("%w: the default workspace cannot be deleted", ErrConflict)
	}
	var out WorkspaceDeletion
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var ws Workspace
		if err := s.forUpdate(tx.Where("id = ?", workspaceID)).Take(&ws).Error; err != nil {
			return err
		}
		var head auditHead
		switch err := tx.Where("workspace_id = ?", workspaceID).Take(&head).Error; {
		case errors.Is(err, gorm.ErrRecordNotFound):
			head = auditHead{WorkspaceID: workspaceID, Hash: audit.GenesisHash}
		case err != nil:
			return err
		}
		out.FinalHead = ChainHead(head)
		res := tx.Where("workspace_id = ?", workspaceID).Delete(&dekRow{})
		if res.Error != nil {
			return res.Error
		}
		out.DEKs = res.RowsAffected
		var conns []string
		if err := tx.Model(&Connection{}).Where("workspace_id = ?", workspaceID).Pluck("id", &conns).Error; err != nil {
			return err
		}
		for start := 0; start < len(conns); start += 500 {
			if err := deleteConnections(tx, conns[start:min(start+500, len(conns))]); err != nil {
				return err
			}
		}
		out.Connections = int64(len(conns))
		var keys []string
		if err := tx.Model(&APIKey{}).Where("workspace_id = ?", workspaceID).Pluck("id", &keys).Error; err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := tx.Where("api_key_id IN ?", keys).Delete(&apiKeyDPoP{}).Error; err != nil {
				return err
			}
		}
		for _, m := range []any{&Credential{}, &Revocation{}, &ProviderSecret{}, &Provider{}, &APIKey{}, &ConnectSession{},
			&WebhookDelivery{}, &WebhookEndpoint{}, &auditRow{}, &auditHead{}, &auditAnchor{}, &auditVerification{}} {
			if err := tx.Where("workspace_id = ?", workspaceID).Delete(m).Error; err != nil {
				return err
			}
		}
		if err := tx.Where("id = ?", workspaceID).Delete(&Workspace{}).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, []audit.Event{{WorkspaceID: DefaultWorkspaceID, Type: audit.WorkspaceDeleted, Actor: actor,
			Outcome: audit.Success, Data: lifecycleData("workspace_id", workspaceID, "deks", out.DEKs,
				"connections", out.Connections, "final_seq", head.Seq, "final_hash", head.Hash, "final_event_id", head.EventID)}})
	})
	return out, notFound(err)
}

func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

package store

// The credential lifecycle: the purge past retention, GDPR erasure of one end user and
// workspace deletion (crypto-shredding). Every hard delete is recorded in the audit chain
// in the same transaction. Revocation bookkeeping is in revocations.go, audit-chain
// pruning in audit_checkpoints.go.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

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

package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// The anomaly detection's client baseline (internal/audit/anomaly_clients.go, migration
// 00023): per API key, the end of its warm-up and the keyed hashes of the clients it used.

var _ audit.ClientStore = (*Store)(nil)

// LearnAPIKeyClients implements audit.ClientStore, in one transaction: the key's warm-up
// starts at its first client; each client is inserted, or its last_seen moved; the key
// keeps its keep most recently seen clients. It returns the clients no replica had recorded
// before, once the warm-up is over (an insert that found the row is not new: two replicas
// seeing one new client report it once).
func (s *Store) LearnAPIKeyClients(ctx context.Context, workspaceID, apiKeyID string, seen []audit.ClientSeen,
	warmup time.Duration, keep int, now time.Time) ([]audit.ClientSeen, error) {
	now = now.UTC().Truncate(time.Microsecond)
	var fresh []audit.ClientSeen
	err := s.tx(ctx, func(tx *gorm.DB) error {
		fresh = fresh[:0]
		if err := tx.Exec(`INSERT INTO api_key_client_baselines (workspace_id, api_key_id, learning_until, created_at)
			VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, workspaceID, apiKeyID, now.Add(warmup), now).Error; err != nil {
			return err
		}
		var until time.Time
		if err := tx.Raw(`SELECT learning_until FROM api_key_client_baselines WHERE workspace_id = ? AND api_key_id = ?`,
			workspaceID, apiKeyID).Row().Scan(&until); err != nil {
			return err
		}
		learning := now.Before(until)
		for _, c := range seen {
			res := tx.Exec(`INSERT INTO api_key_clients (workspace_id, api_key_id, kind, client_hash, first_seen, last_seen)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, workspaceID, apiKeyID, c.Kind, c.Hash, now, now)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 1 {
				if !learning {
					fresh = append(fresh, c)
				}
				continue
			}
			if err := tx.Exec(`UPDATE api_key_clients SET last_seen = ?
				WHERE workspace_id = ? AND api_key_id = ? AND kind = ? AND client_hash = ? AND last_seen < ?`,
				now, workspaceID, apiKeyID, c.Kind, c.Hash, now).Error; err != nil {
				return err
			}
		}
		// Keep the most recent clients of each kind: the oldest beyond keep go.
		return tx.Exec(`DELETE FROM api_key_clients WHERE workspace_id = ? AND api_key_id = ? AND client_hash IN (
			SELECT client_hash FROM (SELECT client_hash, ROW_NUMBER() OVER (PARTITION BY kind ORDER BY last_seen DESC, client_hash) AS n
				FROM api_key_clients WHERE workspace_id = ? AND api_key_id = ?) ranked WHERE n > ?)`,
			workspaceID, apiKeyID, workspaceID, apiKeyID, keep).Error
	})
	if err != nil {
		return nil, s.classify(err)
	}
	return fresh, nil
}

// APIKeyClientCount is how many clients of kind the baseline holds for a key (tests).
func (s *Store) APIKeyClientCount(ctx context.Context, workspaceID, apiKeyID, kind string) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Table("api_key_clients").
		Where("workspace_id = ? AND api_key_id = ? AND kind = ?", workspaceID, apiKeyID, kind).Count(&n).Error
	return n, s.classify(err)
}

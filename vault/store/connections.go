package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// CreateConnection stores a connection, its sealed credential and its audit event.
func (s *Store) CreateConnection(ctx context.Context, c Connection, cred Credential, evs ...audit.Event) error {
	c.ConnectionConfig, c.Metadata = orEmptyObject(c.ConnectionConfig), orEmptyObject(c.Metadata)
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&c).Error; err != nil {
			return err
		}
		if err := tx.Create(&cred).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	})
}

// Connection returns a workspace's connection (metadata only).
func (s *Store) Connection(ctx context.Context, workspaceID, id string) (Connection, error) {
	var c Connection
	err := s.db.WithContext(ctx).Where("workspace_id = ? AND id = ?", workspaceID, id).Take(&c).Error
	return c, s.classify(err)
}

// ConnectionCredential is a connection joined with its sealed credential (nil when the
// ciphertext has been deleted).
type ConnectionCredential struct {
	Connection
	Credential *Credential
	// WorkspaceFrozen: the connection's workspace is frozen (incident response); read in the
	// same query (a join on the workspace's primary key), cached with the row.
	WorkspaceFrozen bool
}

type connCredRow struct {
	Connection
	CredConnectionID   *string  `gorm:"column:cred_connection_id"`
	CredAccessToken    []byte   `gorm:"column:cred_access_token"`
	CredRefreshToken   []byte   `gorm:"column:cred_refresh_token"`
	CredAPIKey         []byte   `gorm:"column:cred_api_key"`
	CredTokenType      string   `gorm:"column:cred_token_type"`
	CredAccessOrigins  *Strings `gorm:"column:cred_access_origins"`
	CredRefreshOrigins *Strings `gorm:"column:cred_refresh_origins"`
	CredGrantSecret    []byte   `gorm:"column:cred_grant_secret"`
	CredGrantOrigins   *Strings `gorm:"column:cred_grant_origins"`
	CredUpdatedAt      *time.Time
	WsFrozenAt         *time.Time `gorm:"column:ws_frozen_at"`
}

// credColumns selects a connection's credential beside it (credentials AS cr) as
// connCredRow reads it.
const credColumns = `c.*, cr.connection_id AS cred_connection_id, cr.access_token AS cred_access_token,
			cr.refresh_token AS cred_refresh_token, cr.api_key AS cred_api_key,
			cr.token_type AS cred_token_type, cr.access_origins AS cred_access_origins,
			cr.refresh_origins AS cred_refresh_origins, cr.grant_secret AS cred_grant_secret,
			cr.grant_origins AS cred_grant_origins, cr.updated_at AS cred_updated_at`

// credential is the row's credential, nil when it has none.
func (row *connCredRow) credential() *Credential {
	if row.CredConnectionID == nil {
		return nil
	}
	cr := &Credential{ConnectionID: *row.CredConnectionID, WorkspaceID: row.WorkspaceID,
		AccessToken: row.CredAccessToken, RefreshToken: row.CredRefreshToken, APIKey: row.CredAPIKey,
		TokenType: row.CredTokenType, AccessOrigins: row.CredAccessOrigins, RefreshOrigins: row.CredRefreshOrigins,
		GrantSecret: row.CredGrantSecret, GrantOrigins: row.CredGrantOrigins}
	if row.CredUpdatedAt != nil {
		cr.UpdatedAt = *row.CredUpdatedAt
	}
	return cr
}

// ConnectionWithCredential is the hot path's one indexed read: the connection and its
// sealed credential by primary key, served from the sealed-row cache (conncache.go) when
// it holds the row.
func (s *Store) ConnectionWithCredential(ctx context.Context, workspaceID, id string) (ConnectionCredential, error) {
	if cc, ok := s.conns.get(workspaceID, id); ok {
		return cc, nil
	}
	gen, _ := s.conns.generation() // before the read: a write since then keeps the row out
	var row connCredRow
	err := s.db.WithContext(ctx).Table("connections AS c").
		Select(credColumns+`, w.frozen_at AS ws_frozen_at`).
		Joins("LEFT JOIN credentials cr ON cr.connection_id = c.id").
		Joins("LEFT JOIN workspaces w ON w.id = c.workspace_id").
		Where("c.id = ? AND c.workspace_id = ?", id, workspaceID).Take(&row).Error
	if err != nil {
		return ConnectionCredential{}, s.classify(err)
	}
	out := ConnectionCredential{Connection: row.Connection, Credential: row.credential(), WorkspaceFrozen: row.WsFrozenAt != nil}
	s.conns.put(gen, out)
	return out, nil
}

// ConnectionFilter narrows ListConnections.
type ConnectionFilter struct {
	EndUserID string
	Provider  string
	Status    string
	After     string // cursor: list ids greater than this
	Limit     int
}

// ListConnections pages through a workspace's connections in id order.
func (s *Store) ListConnections(ctx context.Context, workspaceID string, f ConnectionFilter) ([]Connection, error) {
	q := s.db.WithContext(ctx).Where("workspace_id = ?", workspaceID)
	if f.EndUserID != "" {
		q = q.Where("end_user_id = ?", f.EndUserID)
	}
	if f.Provider != "" {
		q = q.Where("provider = ?", f.Provider)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.After != "" {
		q = q.Where("id > ?", f.After)
	}
	var out []Connection
	err := q.Order("id").Limit(f.Limit).Find(&out).Error
	return out, s.classify(err)
}

// Disconnect marks a connection disconnected. With deleteCredential the ciphertext is
// deleted in the same transaction; otherwise it is kept sealed (and unusable) until the
// retention window ends. An already disconnected connection is returned unchanged.
func (s *Store) Disconnect(ctx context.Context, workspaceID, id string, deleteCredential bool, evs ...audit.Event) (Connection, error) {
	var c Connection
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.forUpdate(tx.Where("workspace_id = ? AND id = ?", workspaceID, id)).Take(&c).Error; err != nil {
			return err
		}
		if c.Status == StatusDisconnected {
			return nil
		}
		now := s.now().UTC()
		if deleteCredential {
			if err := tx.Where("connection_id = ?", id).Delete(&Credential{}).Error; err != nil {
				return err
			}
		}
		res := tx.Model(&Connection{}).Where("id = ? AND version = ?", id, c.Version).Updates(map[string]any{
			"status": StatusDisconnected, "disconnected_at": now, "next_refresh_at": nil,
			"updated_at": now, "version": c.Version + 1,
		})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrConflict
		}
		c.Status, c.DisconnectedAt, c.NextRefreshAt, c.UpdatedAt, c.Version = StatusDisconnected, &now, nil, now, c.Version+1
		return s.appendEvents(tx, evs)
	})
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Connection{}, ErrNotFound
	}
	return c, err
}

// ConnectionByExternalID returns the workspace's connection imported with externalID.
func (s *Store) ConnectionByExternalID(ctx context.Context, workspaceID, externalID string) (Connection, error) {
	var c Connection
	err := s.db.WithContext(ctx).Where("workspace_id = ? AND external_id = ?", workspaceID, externalID).Take(&c).Error
	return c, s.classify(err)
}

// CountConnectionsByStatus counts every workspace's connections by stored status (one
// grouped query; the metrics job runs it once a minute, never per scrape).
func (s *Store) CountConnectionsByStatus(ctx context.Context) (map[string]int64, error) {
	var rows []struct {
		Status string
		N      int64
	}
	err := s.db.WithContext(ctx).Model(&Connection{}).Select("status, COUNT(*) AS n").Group("status").Scan(&rows).Error
	if err != nil {
		return nil, s.classify(err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, nil
}

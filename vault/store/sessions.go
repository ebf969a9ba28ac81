package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// ConnectSession is one OAuth connect flow (API.md "Connect"). It is created by the
// application, started once by the end user's browser and consumed once by the callback.
// StateHash is the SHA-256 of the state (the raw state is never stored), PKCEVerifier is
// sealed under the credentials keyring (owner: the session id, field "pkce_verifier"), and
// BrowserBinding is an HMAC over the browser's flow cookie.
type ConnectSession struct {
	ID                    string `gorm:"primaryKey"`
	WorkspaceID           string
	Provider              string
	EndUserID             string
	CallbackURL           string
	ReturnURL             string
	Scopes                Strings
	StateHash             []byte
	PKCEVerifier          []byte   `gorm:"column:pkce_verifier"`
	VerifierOrigins       *Strings // the verifier's origin binding (nil: not bound)
	BrowserBinding        []byte
	ReconnectConnectionID string
	// ConnectionConfig are the connection_config values (JSONObject) the application gave,
	// or the end user typed on the connect page ("{}" until then).
	ConnectionConfig string
	ExpiresAt        time.Time
	StartedAt        *time.Time
	UsedAt           *time.Time
	CreatedAt        time.Time
}

// TableName implements gorm's tabler.
func (ConnectSession) TableName() string { return "connect_sessions" }

// SessionStart is what the browser's first visit writes into a session.
type SessionStart struct {
	StateHash    []byte
	PKCEVerifier []byte // sealed
	// VerifierOrigins is the verifier's origin binding (the token endpoint's origin).
	VerifierOrigins *Strings
	BrowserBinding  []byte
	// ConnectionConfig, when not "", replaces the session's (the values the end user typed).
	ConnectionConfig string
}

// CreateConnectSession stores a new, unstarted session.
func (s *Store) CreateConnectSession(ctx context.Context, cs ConnectSession) error {
	if cs.Scopes == nil {
		cs.Scopes = Strings{}
	}
	cs.ConnectionConfig = orEmptyObject(cs.ConnectionConfig)
	// The start columns stay NULL (an empty blob would collide in the unique state_hash).
	err := s.db.WithContext(ctx).Omit("state_hash", "pkce_verifier", "browser_binding", "started_at", "used_at").Create(&cs).Error
	return s.classify(err)
}

// ConnectSession returns a session by id, whatever its state. The browser's routes have no
// workspace: the unguessable id is the capability.
func (s *Store) ConnectSession(ctx context.Context, id string) (ConnectSession, error) {
	var cs ConnectSession
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&cs).Error
	return cs, s.classify(err)
}

// StartConnectSession records the state hash, sealed verifier and browser binding of a
// session, once: a compare-and-swap on started_at IS NULL AND expires_at > now. A session
// that is unknown, already started or expired is ErrConflict.
func (s *Store) StartConnectSession(ctx context.Context, id string, st SessionStart, now time.Time) error {
	if len(st.StateHash) == 0 || len(st.PKCEVerifier) == 0 || len(st.BrowserBinding) == 0 {
		return errors.New("store: a session start needs a state hash, a verifier and a binding")
	}
	now = now.UTC()
	upd := map[string]any{"state_hash": st.StateHash, "pkce_verifier": st.PKCEVerifier,
		"verifier_origins": st.VerifierOrigins, "browser_binding": st.BrowserBinding, "started_at": now}
	if st.ConnectionConfig != "" {
		upd["connection_config"] = st.ConnectionConfig
	}
	res := s.db.WithContext(ctx).Model(&ConnectSession{}).
		Where("id = ? AND started_at IS NULL AND used_at IS NULL AND expires_at > ?", id, now).
		Updates(upd)
	if res.Error != nil {
		return s.classify(res.Error)
	}
	if res.RowsAffected != 1 {
		return ErrConflict
	}
	return nil
}

// ConnectSessionByState returns the started session whose state hash is stateHash, used
// or not (the caller checks). It changes nothing.
func (s *Store) ConnectSessionByState(ctx context.Context, stateHash []byte) (ConnectSession, error) {
	if len(stateHash) == 0 {
		return ConnectSession{}, ErrNotFound
	}
	var cs ConnectSession
	err := s.db.WithContext(ctx).Where("state_hash = ? AND started_at IS NOT NULL", stateHash).Take(&cs).Error
	return cs, s.classify(err)
}

// ConsumeConnectSession marks a started session used, once: a compare-and-swap UPDATE ...
// WHERE used_at IS NULL AND expires_at > now on the id and the state hash. Of two
// concurrent callbacks with the same state exactly one succeeds; the other, a replay and
// an expired session get ErrConflict.
func (s *Store) ConsumeConnectSession(ctx context.Context, id string, stateHash []byte, now time.Time) error {
	now = now.UTC()
	res := s.db.WithContext(ctx).Model(&ConnectSession{}).
		Where("id = ? AND state_hash = ? AND started_at IS NOT NULL AND used_at IS NULL AND expires_at > ?", id, stateHash, now).
		Update("used_at", now)
	if res.Error != nil {
		return s.classify(res.Error)
	}
	if res.RowsAffected != 1 {
		return ErrConflict
	}
	return nil
}

// DeleteExpiredConnectSessions deletes sessions that expired before cutoff (used or not)
// and returns how many went.
func (s *Store) DeleteExpiredConnectSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at < ?", cutoff.UTC()).Delete(&ConnectSession{})
	return res.RowsAffected, s.classify(res.Error)
}

// SaveOAuthConnection stores the outcome of a completed connect flow in one transaction:
// the connection, its sealed credential and the audit events.
//
// With reconnect false, conn and cred are inserted. With reconnect true, conn.ID names an
// existing OAuth connection of conn.WorkspaceID and conn.Provider: its credential is
// replaced (the grant it held is queued for revocation at the provider, see
// queueReplacedGrant), and its status (and status reason), scopes, prefix and expiry are reset from conn (the id, end
// user and creation time are kept), its version incremented. The returned connection is
// what is stored.
func (s *Store) SaveOAuthConnection(ctx context.Context, conn Connection, cred Credential, reconnect bool, evs ...audit.Event) (Connection, error) {
	if cred.ConnectionID != conn.ID || cred.WorkspaceID != conn.WorkspaceID {
		return Connection{}, errors.New("store: credential does not belong to the connection")
	}
	conn.ConnectionConfig, conn.Metadata = orEmptyObject(conn.ConnectionConfig), orEmptyObject(conn.Metadata)
	if !reconnect {
		err := s.tx(ctx, func(tx *gorm.DB) error {
			if err := tx.Create(&conn).Error; err != nil {
				return err
			}
			if err := tx.Create(&cred).Error; err != nil {
				return err
			}
			return s.appendEvents(tx, evs)
		})
		return conn, err
	}
	var out Connection
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var cur Connection
		if err := s.forUpdate(tx.Where("workspace_id = ? AND id = ?", conn.WorkspaceID, conn.ID)).Take(&cur).Error; err != nil {
			return err
		}
		if cur.Provider != conn.Provider || cur.AuthMode != conn.AuthMode {
			return ErrConflict
		}
		if err := s.queueReplacedGrant(tx, cur); err != nil {
			return err
		}
		if err := tx.Where("connection_id = ?", conn.ID).Delete(&Credential{}).Error; err != nil {
			return err
		}
		if err := tx.Create(&cred).Error; err != nil {
			return err
		}
		res := tx.Model(&Connection{}).Where("id = ? AND version = ?", cur.ID, cur.Version).Updates(map[string]any{
			"status": conn.Status, "status_reason": conn.StatusReason, "scopes": conn.Scopes, "credential_prefix": conn.CredentialPrefix,
			"expires_at": conn.ExpiresAt, "last_refreshed_at": conn.LastRefreshedAt, "next_refresh_at": conn.NextRefreshAt,
			"disconnected_at": nil, "updated_at": conn.UpdatedAt, "version": cur.Version + 1,
			"connection_config": orEmptyObject(conn.ConnectionConfig), "metadata": orEmptyObject(conn.Metadata),
		})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrConflict
		}
		out = cur
		out.Status, out.StatusReason, out.Scopes, out.CredentialPrefix = conn.Status, conn.StatusReason, conn.Scopes, conn.CredentialPrefix
		out.ExpiresAt, out.LastRefreshedAt, out.NextRefreshAt = conn.ExpiresAt, conn.LastRefreshedAt, conn.NextRefreshAt
		out.DisconnectedAt, out.UpdatedAt, out.Version = nil, conn.UpdatedAt, cur.Version+1
		out.ConnectionConfig, out.Metadata = orEmptyObject(conn.ConnectionConfig), orEmptyObject(conn.Metadata)
		return s.appendEvents(tx, evs)
	})
	return out, err
}

// ConnectWithSession stores a connection made on a connect session's hosted form (an API
// key the end user typed into the connect page) and uses the session up, in one
// transaction: the session must be pending (never started or used, unexpired), else
// ErrConflict and nothing is written.
func (s *Store) ConnectWithSession(ctx context.Context, sessionID string, c Connection, cred Credential, now time.Time, evs ...audit.Event) error {
	now = now.UTC()
	c.ConnectionConfig, c.Metadata = orEmptyObject(c.ConnectionConfig), orEmptyObject(c.Metadata)
	return s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&ConnectSession{}).
			Where("id = ? AND started_at IS NULL AND used_at IS NULL AND expires_at > ?", sessionID, now).
			Updates(map[string]any{"started_at": now, "used_at": now})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrConflict
		}
		if err := tx.Create(&c).Error; err != nil {
			return err
		}
		if err := tx.Create(&cred).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	})
}

// orEmptyObject is s, or "{}" for "" (the columns are NOT NULL JSON objects).
func orEmptyObject(s string) string {
	if s == "" {
		return "{}"
	}
	return s
}

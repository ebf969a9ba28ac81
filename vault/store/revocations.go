package store

// Revocation bookkeeping (RFC 7009 at the providers). A disconnect marks the connection
// revoke_pending and records a revocation of its own credential; a reconnect moves the
// grant it replaces (the credential's sealed tokens) into a revocation of its own. The
// retry job claims due revocations; each one ends — revoked, not revocable, or given up
// after the retention window — and is deleted then, never claimed again.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
)

// Revocation is a pending RFC 7009 revocation of one grant of a connection.
type Revocation struct {
	ID            string `gorm:"primaryKey"`
	ConnectionID  string
	WorkspaceID   string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string // an error code, never a provider's text
	CreatedAt     time.Time
	// AccessToken and RefreshToken are the sealed tokens of a grant that a reconnect
	// replaced, as they were in the connection's credential (sealed under its bindings).
	// Both nil: the revocation is of the connection's own credential (a disconnect).
	AccessToken  []byte
	RefreshToken []byte
	// AccessOrigins and RefreshOrigins are the replaced tokens' origin bindings, as in the
	// credential (part of each one's associated data).
	AccessOrigins  *Strings
	RefreshOrigins *Strings
}

// TableName implements gorm's tabler.
func (Revocation) TableName() string { return "revocations" }

// Replaced reports whether r is of a grant that a reconnect replaced (it carries the
// grant's sealed tokens) rather than of the connection's own credential.
func (r Revocation) Replaced() bool { return len(r.AccessToken) > 0 || len(r.RefreshToken) > 0 }

// ownRevocation narrows q to the revocation of connection id's own credential.
func ownRevocation(q *gorm.DB, id string) *gorm.DB {
	return q.Where("connection_id = ? AND COALESCE(LENGTH(access_token), 0) = 0 AND COALESCE(LENGTH(refresh_token), 0) = 0", id)
}

// BeginRevoke marks a connection revoke_pending, takes it off the refresh schedule, bumps
// its version (so a refresh in flight cannot commit) and records a revocation of its
// credential due now, with evs, in one transaction. started is false, and nothing
// changes, when the connection is already disconnected or revoke_pending.
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
		if err := ownRevocation(tx, id).Delete(&Revocation{}).Error; err != nil {
			return err
		}
		r := Revocation{ID: ids.New(ids.Revocation), ConnectionID: id, WorkspaceID: workspaceID, NextAttemptAt: now, CreatedAt: now}
		if err := tx.Create(&r).Error; err != nil {
			return err
		}
		started = true
		return s.appendEvents(tx, evs)
	})
	return c, started, notFound(err)
}

// queueReplacedGrant moves the credential that a reconnect of cur is about to replace into
// a revocation due now, inside the reconnect's transaction: into the connection's own
// revocation when it is revoke_pending (its disconnect's revocation has not succeeded;
// its schedule and age are kept), else into a new one. The credential of a disconnected
// connection (one its provider could not revoke) is not queued.
func (s *Store) queueReplacedGrant(tx *gorm.DB, cur Connection) error {
	var old Credential
	switch err := tx.Where("connection_id = ?", cur.ID).Take(&old).Error; {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return ownRevocation(tx, cur.ID).Delete(&Revocation{}).Error
	case err != nil:
		return err
	}
	grant := Revocation{AccessToken: nilIfEmpty(old.AccessToken), RefreshToken: nilIfEmpty(old.RefreshToken),
		AccessOrigins: old.AccessOrigins, RefreshOrigins: old.RefreshOrigins}
	if cur.Status == StatusDisconnected || !grant.Replaced() {
		return ownRevocation(tx, cur.ID).Delete(&Revocation{}).Error
	}
	res := ownRevocation(tx.Model(&Revocation{}), cur.ID).Updates(map[string]any{
		"access_token": grant.AccessToken, "refresh_token": grant.RefreshToken,
		"access_origins": grant.AccessOrigins, "refresh_origins": grant.RefreshOrigins})
	if res.Error != nil || res.RowsAffected > 0 {
		return res.Error
	}
	now := s.now().UTC()
	grant.ID, grant.ConnectionID, grant.WorkspaceID = ids.New(ids.Revocation), cur.ID, cur.WorkspaceID
	grant.NextAttemptAt, grant.CreatedAt = now, now
	return tx.Create(&grant).Error
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
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

// Outcomes of FinishRevoke and FinishGrantRevoke.
const (
	// Revoked: the provider revoked the tokens; the ciphertext is deleted now.
	Revoked RevokeOutcome = iota + 1
	// NotRevocable: the provider cannot revoke (no endpoint, a permanent refusal), or the
	// revocation was given up after the retention window. A connection's own sealed
	// credential is kept, unusable, until the retention window ends; a replaced grant's
	// is deleted with its revocation.
	NotRevocable
	// RetryLater: the provider was unavailable; the revocation is retried at Next.
	RetryLater
)

// RevokeResult is what FinishRevoke and FinishGrantRevoke record.
type RevokeResult struct {
	Outcome   RevokeOutcome
	Next      time.Time // RetryLater
	ErrorCode string    // RetryLater, NotRevocable
}

// FinishRevoke records the outcome of a revocation attempt of a revoke_pending
// connection's own credential, with evs. A connection that is no longer revoke_pending
// (reconnected, purged) has its stale revocation deleted (nothing is left to revoke: a
// reconnect queues the grant it replaces separately) and answers ErrConflict.
func (s *Store) FinishRevoke(ctx context.Context, workspaceID, id string, r RevokeResult, evs ...audit.Event) (Connection, error) {
	var c Connection
	stale := false
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.forUpdate(tx.Where("workspace_id = ? AND id = ?", workspaceID, id)).Take(&c).Error; err != nil {
			return err
		}
		if c.Status != StatusRevokePending {
			stale = true
			return ownRevocation(tx, id).Delete(&Revocation{}).Error
		}
		now := s.now().UTC()
		switch r.Outcome {
		case Revoked, NotRevocable:
			if r.Outcome == Revoked {
				if err := tx.Where("connection_id = ?", id).Delete(&Credential{}).Error; err != nil {
					return err
				}
			}
			if err := ownRevocation(tx, id).Delete(&Revocation{}).Error; err != nil {
				return err
			}
			if err := bumpConnection(tx, &c, map[string]any{"status": StatusDisconnected}, now); err != nil {
				return err
			}
			c.Status = StatusDisconnected
		case RetryLater:
			if err := ownRevocation(tx.Model(&Revocation{}), id).Updates(retryFields(r)).Error; err != nil {
				return err
			}
		default:
			return fmt.Errorf("store: unknown revoke outcome %d", r.Outcome)
		}
		return s.appendEvents(tx, evs)
	})
	if err == nil && stale {
		return c, ErrConflict
	}
	return c, notFound(err)
}

func retryFields(r RevokeResult) map[string]any {
	return map[string]any{"attempts": gorm.Expr("attempts + 1"), "next_attempt_at": r.Next.UTC(), "last_error": r.ErrorCode}
}

// FinishGrantRevoke records the outcome of a revocation attempt of a replaced grant
// (revocation id), with evs: revoked or not revocable deletes the revocation with the
// grant's sealed tokens; RetryLater schedules the next attempt. ErrNotFound when the
// revocation is gone (its connection erased or purged).
func (s *Store) FinishGrantRevoke(ctx context.Context, id string, r RevokeResult, evs ...audit.Event) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var res *gorm.DB
		switch r.Outcome {
		case Revoked, NotRevocable:
			res = tx.Where("id = ?", id).Delete(&Revocation{})
		case RetryLater:
			res = tx.Model(&Revocation{}).Where("id = ?", id).Updates(retryFields(r))
		default:
			return fmt.Errorf("store: unknown revoke outcome %d", r.Outcome)
		}
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return gorm.ErrRecordNotFound
		}
		return s.appendEvents(tx, evs)
	})
	return notFound(err)
}

// RevocationOf returns the pending revocation of a connection's own credential.
func (s *Store) RevocationOf(ctx context.Context, connectionID string) (Revocation, error) {
	var r Revocation
	err := ownRevocation(s.db.WithContext(ctx), connectionID).Take(&r).Error
	return r, s.classify(err)
}

// ConnectionRevocations returns every pending revocation of a connection (its own
// credential's and replaced grants'), oldest first.
func (s *Store) ConnectionRevocations(ctx context.Context, connectionID string) ([]Revocation, error) {
	var out []Revocation
	err := s.db.WithContext(ctx).Where("connection_id = ?", connectionID).Order("created_at, id").Find(&out).Error
	return out, s.classify(err)
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
			if err := tx.Model(&Revocation{}).Where("id = ?", r.ID).Update("next_attempt_at", claimUntil.UTC()).Error; err != nil {
				return err
			}
		}
		return nil
	})
	return out, s.classify(err)
}

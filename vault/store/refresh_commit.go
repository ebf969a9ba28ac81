package store

// Recording a refresh's outcome under its lease: a success (CommitRefresh, or a group of
// them in one transaction), a failure with its backoff, or a passed health check. Every
// write is fenced by lockLeased: when the lease or the version moved, ErrLeaseLost and
// nothing changes.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// RefreshCommit is a successful refresh to store.
type RefreshCommit struct {
	WorkspaceID, ConnectionID, Holder string
	// Version is the connection's version when the lease was claimed.
	Version int64
	// AccessToken is sealed. RefreshToken is sealed, or nil to keep the stored one (the
	// provider sent none).
	AccessToken, RefreshToken []byte
	TokenType                 string
	Scopes                    Strings // nil keeps the stored scopes
	CredentialPrefix          string
	ExpiresAt, NextRefreshAt  *time.Time
	// RefreshTokenExpiresAt replaces the stored refresh-token expiry when
	// SetRefreshTokenExpiry (nil: unknown); otherwise the stored one is kept.
	RefreshTokenExpiresAt *time.Time
	SetRefreshTokenExpiry bool
	Now                   time.Time
	Events                []audit.Event
}

// lockLeased locks the connection and checks that the lease is still holder's and the
// version has not moved: the fence every write of a refresh's outcome passes. One
// statement: the row, locked, with its lease holder.
func (s *Store) lockLeased(tx *gorm.DB, workspaceID, id, holder string, version int64) (Connection, error) {
	var row struct {
		Connection
		LeaseHolder string `gorm:"column:lease_holder"`
	}
	q := tx.Table("connections AS c").Select("c.*, COALESCE(r.lease_holder, '') AS lease_holder").
		Joins("LEFT JOIN refresh_state r ON r.connection_id = c.id").
		Where("c.workspace_id = ? AND c.id = ?", workspaceID, id)
	if s.dialect == Postgres {
		q = q.Clauses(clause.Locking{Strength: "UPDATE", Table: clause.Table{Name: "c"}})
	}
	if err := q.Take(&row).Error; err != nil {
		return Connection{}, err
	}
	if row.LeaseHolder != holder || row.Version != version {
		return Connection{}, ErrLeaseLost
	}
	return row.Connection, nil
}

// CommitRefresh stores new tokens — including a rotated refresh token — and releases the
// lease in one transaction, with the refresh's audit event. It fails with ErrLeaseLost,
// changing nothing, when the lease was taken over or the connection changed meanwhile. An
// expired lease that nobody took over still commits: no one else can have refreshed
// without taking it, and throwing away a rotated refresh token would lose the grant.
// It is CommitRefreshes with a group of one.
func (s *Store) CommitRefresh(ctx context.Context, rc RefreshCommit) (Connection, error) {
	out, err := s.CommitRefreshes(ctx, []RefreshCommit{rc})
	if err != nil {
		return Connection{}, err
	}
	return out[0].Conn, out[0].Err
}

// CommitOutcome is one item's answer of CommitRefreshes: the connection as committed, or
// the item's error.
type CommitOutcome struct {
	Conn Connection
	Err  error
}

// MaxCommitGroup bounds the items of one CommitRefreshes. Each item runs in a savepoint,
// a PostgreSQL subtransaction with an xid of its own (its row lock needs one); up to 64 fit
// in the backend's subxid cache, past that every other session's snapshots slow down.
const MaxCommitGroup = 64

// CommitRefreshes commits a group of refreshes in ONE transaction: each item does what
// CommitRefresh does for one (fence, credential and connection updates, lease release),
// and the successful items' audit events are appended together, once, at the end.
//
// Items are processed in connection id order, each in a savepoint: an item whose fence
// fails (ErrLeaseLost: lease taken over, version moved, credential deleted) or whose
// connection is gone (ErrNotFound) is rolled back to its savepoint, changes nothing and
// gets that error in its outcome, while the others go on. (The savepoints nest and are
// never released, as gorm's nested transactions do: one statement per item, and rolling
// back to the latest undoes that item only, the next not having started.) Any other
// error aborts the whole transaction: nothing is written and it is returned, as every
// item's outcome too. Outcomes are in the order of rcs.
//
// Lock order: the connection rows in id order, then the audit heads in workspace order,
// last — the order of every single-connection transaction (its row, then the head), so
// groups and single commits cannot deadlock one another.
func (s *Store) CommitRefreshes(ctx context.Context, rcs []RefreshCommit) ([]CommitOutcome, error) {
	if len(rcs) > MaxCommitGroup {
		return nil, fmt.Errorf("store: %d refresh commits in one group (at most %d)", len(rcs), MaxCommitGroup)
	}
	out := make([]CommitOutcome, len(rcs))
	order := make([]int, 0, len(rcs))
	for i, rc := range rcs {
		if len(rc.AccessToken) == 0 {
			out[i].Err = errors.New("store: a refresh commit needs an access token")
			continue
		}
		order = append(order, i)
	}
	if len(order) == 0 {
		return out, nil
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(rcs[a].ConnectionID, rcs[b].ConnectionID) })
	// A group of one needs no savepoint: its fence failure rolls the transaction back.
	savepoints := len(order) > 1
	var single error
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var evs []audit.Event
		for _, i := range order {
			if savepoints {
				if err := tx.Exec("SAVEPOINT refresh_item").Error; err != nil {
					return err
				}
			}
			c, err := s.commitOne(tx, rcs[i])
			switch {
			case err == nil:
				out[i] = CommitOutcome{Conn: c}
				evs = append(evs, rcs[i].Events...)
			case !itemFailure(err):
				return err
			case !savepoints:
				single = err
				return err
			default:
				out[i] = CommitOutcome{Err: s.classify(err)}
				if err := tx.Exec("ROLLBACK TO SAVEPOINT refresh_item").Error; err != nil {
					return err
				}
			}
		}
		return s.appendEvents(tx, evs)
	})
	if single != nil && errors.Is(err, single) {
		out[order[0]] = CommitOutcome{Err: err}
		return out, nil
	}
	if err != nil {
		for _, i := range order {
			out[i] = CommitOutcome{Err: err}
		}
		return out, err
	}
	return out, nil
}

// itemFailure reports whether err fails one item of a CommitRefreshes (its fence, or its
// connection gone) rather than the transaction.
func itemFailure(err error) bool {
	return errors.Is(err, ErrLeaseLost) || errors.Is(err, gorm.ErrRecordNotFound)
}

// commitOne is one refresh commit in tx: the fence, the credential and connection updates
// and the lease release (not the audit events). It returns the connection as committed.
func (s *Store) commitOne(tx *gorm.DB, rc RefreshCommit) (Connection, error) {
	now := rc.Now.UTC()
	c, err := s.lockLeased(tx, rc.WorkspaceID, rc.ConnectionID, rc.Holder, rc.Version)
	if err != nil {
		return Connection{}, err
	}
	credUpd := map[string]any{"access_token": rc.AccessToken, "token_type": rc.TokenType, "updated_at": now}
	if rc.RefreshToken != nil {
		credUpd["refresh_token"] = rc.RefreshToken
	}
	res := tx.Model(&Credential{}).Where("connection_id = ?", c.ID).Updates(credUpd)
	if res.Error != nil {
		return Connection{}, res.Error
	}
	if res.RowsAffected != 1 {
		return Connection{}, ErrLeaseLost // the credential was deleted (disconnect)
	}
	upd := map[string]any{"status": StatusActive, "credential_prefix": rc.CredentialPrefix, "expires_at": rc.ExpiresAt,
		"last_refreshed_at": now, "next_refresh_at": rc.NextRefreshAt, "updated_at": now, "version": c.Version + 1}
	if rc.Scopes != nil {
		upd["scopes"] = rc.Scopes
		c.Scopes = rc.Scopes
	}
	if rc.SetRefreshTokenExpiry {
		upd["refresh_token_expires_at"] = rc.RefreshTokenExpiresAt
		c.RefreshTokenExpiresAt = rc.RefreshTokenExpiresAt
	}
	if res := tx.Model(&Connection{}).Where("id = ? AND version = ?", c.ID, c.Version).Updates(upd); res.Error != nil {
		return Connection{}, res.Error
	} else if res.RowsAffected != 1 {
		return Connection{}, ErrLeaseLost
	}
	if err := tx.Model(&RefreshState{}).Where("connection_id = ?", c.ID).Updates(map[string]any{
		"lease_holder": "", "lease_expires_at": nil, "failures": 0, "backoff_until": nil, "rate_limited": false,
		"last_error": "", "updated_at": now}).Error; err != nil {
		return Connection{}, err
	}
	c.Status, c.CredentialPrefix, c.ExpiresAt, c.LastRefreshedAt, c.NextRefreshAt = StatusActive, rc.CredentialPrefix, rc.ExpiresAt, &now, rc.NextRefreshAt
	c.UpdatedAt, c.Version = now, c.Version+1
	return c, nil
}

// RefreshFailure is a failed refresh (or health check) to record.
type RefreshFailure struct {
	WorkspaceID, ConnectionID, Holder string
	Version                           int64
	// Status, when set, becomes the connection's status (needs_reauth after a definitive
	// invalid_grant, error after a failed health check), ErrorCode its status reason, and
	// its version moves.
	Status    string
	ErrorCode string
	// BackoffUntil is the cooldown of a transient failure (nil: none); RateLimited says it
	// is a provider's Retry-After, which even a forced refresh honours.
	BackoffUntil *time.Time
	RateLimited  bool
	// NextRefreshAt is when the sweep tries again; nil: never (needs_reauth).
	NextRefreshAt *time.Time
	Now           time.Time
	Events        []audit.Event
}

// FailRefresh records a failed refresh and releases the lease in one transaction, with its
// audit events. Like CommitRefresh it is fenced: ErrLeaseLost changes nothing. It returns
// the connection as stored and the new failure count.
func (s *Store) FailRefresh(ctx context.Context, f RefreshFailure) (Connection, int, error) {
	now := f.Now.UTC()
	var out Connection
	failures := 0
	err := s.tx(ctx, func(tx *gorm.DB) error {
		c, err := s.lockLeased(tx, f.WorkspaceID, f.ConnectionID, f.Holder, f.Version)
		if err != nil {
			return err
		}
		st, err := refreshStateOf(tx, c.ID)
		if err != nil {
			return err
		}
		upd := map[string]any{"next_refresh_at": f.NextRefreshAt, "updated_at": now}
		if f.Status != "" && f.Status != c.Status {
			upd["status"], upd["status_reason"], upd["version"] = f.Status, f.ErrorCode, c.Version+1
			c.Status, c.StatusReason, c.Version = f.Status, f.ErrorCode, c.Version+1
		}
		if res := tx.Model(&Connection{}).Where("id = ? AND version = ?", c.ID, f.Version).Updates(upd); res.Error != nil {
			return res.Error
		} else if res.RowsAffected != 1 {
			return ErrLeaseLost
		}
		failures = st.Failures + 1
		if err := tx.Model(&RefreshState{}).Where("connection_id = ?", c.ID).Updates(map[string]any{
			"lease_holder": "", "lease_expires_at": nil, "failures": failures, "backoff_until": f.BackoffUntil,
			"rate_limited": f.RateLimited, "last_error": f.ErrorCode, "updated_at": now}).Error; err != nil {
			return err
		}
		c.NextRefreshAt, c.UpdatedAt = f.NextRefreshAt, now
		out = c
		return s.appendEvents(tx, f.Events)
	})
	return out, failures, err
}

// HealthOK records a passed health check of an API-key connection: the lease is released,
// the failure count cleared, the next check scheduled, and a connection in error becomes
// active again (with its audit events).
func (s *Store) HealthOK(ctx context.Context, workspaceID, id, holder string, version int64, next *time.Time, now time.Time, evs ...audit.Event) (Connection, error) {
	now = now.UTC()
	var out Connection
	err := s.tx(ctx, func(tx *gorm.DB) error {
		c, err := s.lockLeased(tx, workspaceID, id, holder, version)
		if err != nil {
			return err
		}
		upd := map[string]any{"next_refresh_at": next, "updated_at": now}
		if c.Status == StatusError {
			upd["status"], upd["version"] = StatusActive, c.Version+1
			c.Status, c.Version = StatusActive, c.Version+1
		} else {
			evs = nil
		}
		if err := tx.Model(&Connection{}).Where("id = ?", c.ID).Updates(upd).Error; err != nil {
			return err
		}
		if err := tx.Model(&RefreshState{}).Where("connection_id = ?", c.ID).Updates(map[string]any{
			"lease_holder": "", "lease_expires_at": nil, "failures": 0, "backoff_until": nil, "rate_limited": false,
			"last_error": "", "updated_at": now}).Error; err != nil {
			return err
		}
		c.NextRefreshAt, c.UpdatedAt = next, now
		out = c
		return s.appendEvents(tx, evs)
	})
	return out, err
}

package store

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

// ErrLeaseLost: the refresh lease is no longer the caller's, or the connection changed
// (its version moved) since the lease was claimed. The caller throws its result away.
var ErrLeaseLost = errors.New("store: refresh lease lost")

// RefreshState is a connection's row of refresh_state: the cross-replica refresh lease
// and the backoff of transient failures. A connection without a row has neither.
type RefreshState struct {
	ConnectionID   string `gorm:"primaryKey"`
	LeaseHolder    string
	LeaseExpiresAt *time.Time
	Failures       int
	BackoffUntil   *time.Time
	RateLimited    bool
	LastError      string
	UpdatedAt      time.Time
}

// TableName implements gorm's tabler.
func (RefreshState) TableName() string { return "refresh_state" }

// leaseLive reports whether another holder's lease is still running at now.
func (r RefreshState) leaseLive(holder string, now time.Time) bool {
	return r.LeaseHolder != "" && r.LeaseHolder != holder && r.LeaseExpiresAt != nil && r.LeaseExpiresAt.After(now)
}

// ClaimOutcome is what ClaimRefresh decided.
type ClaimOutcome int

// Claim outcomes.
const (
	// ClaimGranted: the lease is the caller's until LeaseUntil; call the provider, then
	// CommitRefresh, FailRefresh or ReleaseRefresh.
	ClaimGranted ClaimOutcome = iota + 1
	// ClaimFresh: the connection, as locked, no longer needs a refresh (another replica
	// has just refreshed it). Row is the fresh row.
	ClaimFresh
	// ClaimBusy: another holder's lease is live; wait and claim again.
	ClaimBusy
	// ClaimCooldown: a transient failure's backoff (or a 429's Retry-After) is running.
	ClaimCooldown
	// ClaimInactive: the connection is not active or has no credential.
	ClaimInactive
)

// ClaimRequest asks for one connection's refresh lease.
type ClaimRequest struct {
	WorkspaceID, ConnectionID, Holder string
	Now, LeaseUntil                   time.Time
	// Needed says whether the connection, as read under the lock, still needs a refresh.
	// nil means always.
	Needed func(Connection) bool
	// Force ignores the backoff of transient failures (not a 429's Retry-After).
	Force bool
}

// Claim is ClaimRefresh's answer: the outcome, the locked row and its refresh state.
type Claim struct {
	Outcome ClaimOutcome
	Row     ConnectionCredential
	State   RefreshState
}

// ClaimRefresh decides, in one short transaction holding the connection's row lock
// (PostgreSQL FOR UPDATE; SQLite's immediate transaction), whether the caller may refresh
// the connection now, and if so records the caller's lease with its expiry.
func (s *Store) ClaimRefresh(ctx context.Context, req ClaimRequest) (Claim, error) {
	var out Claim
	now := req.Now.UTC()
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var c Connection
		if err := s.forUpdate(tx.Where("workspace_id = ? AND id = ?", req.WorkspaceID, req.ConnectionID)).Take(&c).Error; err != nil {
			return err
		}
		out.Row.Connection = c
		var cred Credential
		switch err := tx.Where("connection_id = ?", c.ID).Take(&cred).Error; {
		case err == nil:
			out.Row.Credential = &cred
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return err
		}
		st, err := refreshStateOf(tx, c.ID)
		if err != nil {
			return err
		}
		out.State = st
		switch {
		case c.Status != StatusActive && !(c.Status == StatusError && c.AuthMode == "api_key"):
			out.Outcome = ClaimInactive
			return nil
		case out.Row.Credential == nil:
			out.Outcome = ClaimInactive
			return nil
		case st.leaseLive(req.Holder, now):
			// Checked before freshness: a refresh in flight elsewhere may rotate (and the
			// provider revoke) the token this row holds, so the caller waits for it and
			// re-reads rather than hand out a token that is about to die.
			out.Outcome = ClaimBusy
			return nil
		case req.Needed != nil && !req.Needed(c):
			out.Outcome = ClaimFresh
			return nil
		case st.BackoffUntil != nil && st.BackoffUntil.After(now) && (!req.Force || st.RateLimited):
			out.Outcome = ClaimCooldown
			return nil
		}
		if err := upsertLease(tx, c.ID, req.Holder, req.LeaseUntil.UTC(), now); err != nil {
			return err
		}
		out.Outcome = ClaimGranted
		return nil
	})
	if err != nil {
		return Claim{}, err
	}
	return out, nil
}

func refreshStateOf(tx *gorm.DB, id string) (RefreshState, error) {
	var st RefreshState
	err := tx.Where("connection_id = ?", id).Take(&st).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return RefreshState{ConnectionID: id}, nil
	}
	return st, err
}

func upsertLease(tx *gorm.DB, id, holder string, until, now time.Time) error {
	return tx.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "connection_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"lease_holder", "lease_expires_at", "updated_at"}),
	}).Create(&RefreshState{ConnectionID: id, LeaseHolder: holder, LeaseExpiresAt: &until, UpdatedAt: now}).Error
}

// ClaimDue claims the leases of up to limit connections that are due (next_refresh_at at
// or before dueBefore), active (or an API-key connection in error, whose health check
// continues) and not leased by a live holder, oldest due first, and returns them with
// their sealed credentials. It reads the partial index on next_refresh_at, never the whole
// table; on PostgreSQL rows another replica is claiming right now are skipped (FOR UPDATE
// SKIP LOCKED), so replicas sweeping at the same moment share the work.
func (s *Store) ClaimDue(ctx context.Context, holder string, dueBefore, now, leaseUntil time.Time, limit int) ([]ConnectionCredential, error) {
	if limit <= 0 {
		return nil, nil
	}
	now, dueBefore, leaseUntil = now.UTC(), dueBefore.UTC(), leaseUntil.UTC()
	var idList []string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		q := `SELECT c.id FROM connections c LEFT JOIN refresh_state r ON r.connection_id = c.id
			WHERE c.next_refresh_at IS NOT NULL AND c.next_refresh_at <= ?
			AND (c.status = 'active' OR (c.status = 'error' AND c.auth_mode = 'api_key'))
			AND (r.lease_expires_at IS NULL OR r.lease_expires_at <= ? OR r.lease_holder = '')
			ORDER BY c.next_refresh_at LIMIT ?`
		if s.dialect == Postgres {
			q += ` FOR UPDATE OF c SKIP LOCKED`
		}
		if err := tx.Raw(q, dueBefore, now, limit).Scan(&idList).Error; err != nil {
			return err
		}
		// The statement above judged the leases by its snapshot: a replica that claimed a
		// row and committed between that snapshot and our lock on the row is invisible to
		// it. Now that the rows are locked, a new statement sees every committed lease.
		if len(idList) > 0 && s.dialect == Postgres {
			var leased []string
			if err := tx.Raw(`SELECT connection_id FROM refresh_state WHERE connection_id IN ?
				AND lease_holder <> '' AND lease_holder <> ? AND lease_expires_at > ?`,
				idList, holder, now).Scan(&leased).Error; err != nil {
				return err
			}
			idList = slices.DeleteFunc(idList, func(id string) bool { return slices.Contains(leased, id) })
		}
		for _, id := range idList {
			if err := upsertLease(tx, id, holder, leaseUntil, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || len(idList) == 0 {
		return nil, err
	}
	return s.connectionsWithCredentials(ctx, idList)
}

func (s *Store) connectionsWithCredentials(ctx context.Context, idList []string) ([]ConnectionCredential, error) {
	var rows []connCredRow
	err := s.db.WithContext(ctx).Table("connections AS c").
		Select(`c.*, cr.connection_id AS cred_connection_id, cr.access_token AS cred_access_token,
			cr.refresh_token AS cred_refresh_token, cr.api_key AS cred_api_key,
			cr.token_type AS cred_token_type, cr.updated_at AS cred_updated_at`).
		Joins("LEFT JOIN credentials cr ON cr.connection_id = c.id").
		Where("c.id IN ?", idList).Order("c.next_refresh_at").Find(&rows).Error
	if err != nil {
		return nil, s.classify(err)
	}
	out := make([]ConnectionCredential, 0, len(rows))
	for _, row := range rows {
		cc := ConnectionCredential{Connection: row.Connection}
		if row.CredConnectionID != nil {
			cc.Credential = &Credential{ConnectionID: *row.CredConnectionID, WorkspaceID: row.WorkspaceID,
				AccessToken: row.CredAccessToken, RefreshToken: row.CredRefreshToken, APIKey: row.CredAPIKey,
				TokenType: row.CredTokenType}
		}
		out = append(out, cc)
	}
	return out, nil
}

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
	Now                       time.Time
	Events                    []audit.Event
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
	// invalid_grant, error after a failed health check) and its version moves.
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
			upd["status"], upd["version"] = f.Status, c.Version+1
			c.Status, c.Version = f.Status, c.Version+1
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

// ReleaseRefresh gives a lease back without recording anything (the caller found nothing
// to do, or threw its result away). A lease that is no longer holder's is left alone.
// next, when set, reschedules the connection (nil leaves next_refresh_at as it is).
func (s *Store) ReleaseRefresh(ctx context.Context, id, holder string, next *time.Time, clearNext bool, now time.Time) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&RefreshState{}).Where("connection_id = ? AND lease_holder = ?", id, holder).
			Updates(map[string]any{"lease_holder": "", "lease_expires_at": nil, "updated_at": now.UTC()})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		if next != nil || clearNext {
			return tx.Model(&Connection{}).Where("id = ?", id).Update("next_refresh_at", next).Error
		}
		return nil
	})
}

// RefreshStateOf returns a connection's refresh state (a zero state when it has none).
func (s *Store) RefreshStateOf(ctx context.Context, id string) (RefreshState, error) {
	st, err := refreshStateOf(s.db.WithContext(ctx), id)
	return st, s.classify(err)
}

// CountDue counts the connections due at or before dueBefore (the refresh queue depth).
// It reads the partial index on next_refresh_at.
func (s *Store) CountDue(ctx context.Context, dueBefore time.Time) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Connection{}).
		Where("next_refresh_at IS NOT NULL AND next_refresh_at <= ?", dueBefore.UTC()).Count(&n).Error
	return n, s.classify(err)
}

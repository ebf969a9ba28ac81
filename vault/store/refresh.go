package store

// Refresh leases across replicas: claiming one connection's lease (ClaimRefresh) or a batch
// of due connections (ClaimDue), releasing it, and the refresh state and queue depth. What
// a lease holder records at the end is in refresh_commit.go.

import (
	"context"
	"errors"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ErrLeaseLost: the refresh lease is no longer the caller's, or the connection changed
// (its version moved) since the lease was claimed. The caller throws its result away.
var ErrLeaseLost = errors.New("store: refresh lease lost")

// RefreshState is a connection's row of refresh_state: the cross-replica refresh lease
// and the backoff of transient failures. A connection without a row has neither.
// UpdatedAt is the time of the last refresh activity (a lease claimed or released, a
// result or failure recorded): the throttle of forced refreshes reads it.
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
	// Force refreshes whatever Needed says and ignores the backoff of transient failures
	// (not a 429's Retry-After), unless the connection had refresh activity within
	// ForceInterval before Now (RefreshState.UpdatedAt): then the claim is decided as an
	// unforced one, except that a running backoff answers ClaimCooldown, so forced
	// refreshes of a connection happen at most once per interval across replicas and
	// callers inside it get the last refresh's result, success or failure.
	Force         bool
	ForceInterval time.Duration
}

// forced reports whether a claim's Force applies given the connection's refresh state.
func (req ClaimRequest) forced(st RefreshState, now time.Time) bool {
	return req.Force && (st.UpdatedAt.IsZero() || !now.Before(st.UpdatedAt.Add(req.ForceInterval)))
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
		forced := req.forced(st, now)
		backoff := st.BackoffUntil != nil && st.BackoffUntil.After(now)
		switch {
		case c.Status != StatusActive && !(c.Status == StatusError && (c.AuthMode == "api_key" || c.AuthMode == "basic")): // health-checked back
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
		case req.Force && !forced && backoff:
			// A forced refresh inside the interval after a failed one: that failure stands.
			out.Outcome = ClaimCooldown
			return nil
		case !forced && req.Needed != nil && !req.Needed(c):
			out.Outcome = ClaimFresh
			return nil
		case backoff && (!forced || st.RateLimited):
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
			AND (c.status = 'active' OR (c.status = 'error' AND c.auth_mode IN ('api_key', 'basic')))
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
		Select(credColumns).
		Joins("LEFT JOIN credentials cr ON cr.connection_id = c.id").
		Where("c.id IN ?", idList).Order("c.next_refresh_at").Find(&rows).Error
	if err != nil {
		return nil, s.classify(err)
	}
	out := make([]ConnectionCredential, 0, len(rows))
	for i := range rows {
		out = append(out, ConnectionCredential{Connection: rows[i].Connection, Credential: rows[i].credential()})
	}
	return out, nil
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

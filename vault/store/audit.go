package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
)

// appendEvents links and inserts events in tx, one chain per workspace. Heads are locked
// in workspace order so that concurrent multi-workspace appends cannot deadlock, and the
// head row lock (PostgreSQL) or the immediate transaction (SQLite) serialises appends, so
// the chain never forks.
func (s *Store) appendEvents(tx *gorm.DB, evs []audit.Event) error {
	return s.appendEventsOn(tx, evs, nil)
}

// appendEventsOn is appendEvents; with conn (PostgreSQL: the connection tx runs on) the
// rows go in with COPY instead of INSERT.
func (s *Store) appendEventsOn(tx *gorm.DB, evs []audit.Event, conn *sql.Conn) error {
	if len(evs) == 0 {
		return nil
	}
	byWS := map[string][]int{}
	var order []string
	for i := range evs {
		ws := evs[i].WorkspaceID
		if ws == "" {
			return errors.New("store: audit event without workspace")
		}
		if _, ok := byWS[ws]; !ok {
			order = append(order, ws)
		}
		byWS[ws] = append(byWS[ws], i)
	}
	sort.Strings(order)
	for _, ws := range order {
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).
			Create(&auditHead{WorkspaceID: ws, Seq: 0, Hash: audit.GenesisHash}).Error; err != nil {
			return err
		}
		var head auditHead
		if err := s.forUpdate(tx.Where("workspace_id = ?", ws)).Take(&head).Error; err != nil {
			return err
		}
		rows := make([]*audit.Event, 0, len(byWS[ws]))
		for _, i := range byWS[ws] {
			e := &evs[i]
			if e.ID == "" {
				e.ID = ids.New(ids.Event)
			}
			if e.At.IsZero() {
				e.At = s.now()
			}
			audit.Link(e, head.Seq, head.Hash)
			head.Seq, head.Hash, head.EventID = e.Seq, e.Hash, e.ID
			rows = append(rows, e)
		}
		var err error
		if conn != nil {
			err = copyAuditRows(tx, conn, rows)
		} else {
			err = s.insertAuditRows(tx, rows)
		}
		if err != nil {
			return err
		}
		if err := tx.Model(&auditHead{}).Where("workspace_id = ?", ws).
			Updates(map[string]any{"seq": head.Seq, "hash": head.Hash, "event_id": head.EventID}).Error; err != nil {
			return err
		}
	}
	return nil
}

// auditInsertBatch is the number of rows per INSERT statement (12 parameters a row, well
// under PostgreSQL's 65535 and SQLite's 32766 bound parameters).
const auditInsertBatch = 200

// insertAuditRows inserts linked events into audit_events with hand-built multi-row
// INSERTs on tx's own connection (the same transaction): the batched token.read writer's
// hot path, without gorm's per-row reflection. Values are always bound parameters.
func (s *Store) insertAuditRows(tx *gorm.DB, evs []*audit.Event) error {
	const cols = `INSERT INTO audit_events (id, workspace_id, seq, "at", "type", actor, connection_id, outcome, error_code, data, prev_hash, hash) VALUES `
	const perRow = 12
	ctx := tx.Statement.Context
	pg := s.dialect == Postgres
	for len(evs) > 0 {
		n := min(len(evs), auditInsertBatch)
		var q strings.Builder
		q.Grow(len(cols) + n*perRow*6)
		q.WriteString(cols)
		args := make([]any, 0, n*perRow)
		for i, e := range evs[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteByte('(')
			for j := range perRow {
				if j > 0 {
					q.WriteByte(',')
				}
				if pg {
					q.WriteByte('$')
					q.WriteString(strconv.Itoa(i*perRow + j + 1))
				} else {
					q.WriteByte('?')
				}
			}
			q.WriteByte(')')
			args = append(args, e.ID, e.WorkspaceID, e.Seq, e.At, e.Type, e.Actor, e.ConnectionID,
				e.Outcome, e.ErrorCode, e.Data, e.PrevHash, e.Hash)
		}
		if _, err := tx.Statement.ConnPool.ExecContext(ctx, q.String(), args...); err != nil {
			if t, ok := tx.Dialector.(gorm.ErrorTranslator); ok {
				err = t.Translate(err) // as gorm's Create does (TranslateError): duplicate key → ErrConflict
			}
			return fmt.Errorf("store: insert audit events: %w", err)
		}
		evs = evs[n:]
	}
	return nil
}

// AppendEvents appends events in a transaction of their own (the batched token.read
// writer, and events that record no other change). On PostgreSQL the rows go in with COPY
// on the transaction's own connection: about a tenth less database CPU per row than a
// multi-row INSERT, and no statement of thousands of parameters to build and parse.
func (s *Store) AppendEvents(ctx context.Context, evs ...audit.Event) error {
	if s.dialect != Postgres {
		return s.tx(ctx, func(tx *gorm.DB) error { return s.appendEvents(tx, evs) })
	}
	err := s.db.WithContext(ctx).Connection(func(c *gorm.DB) error {
		conn, ok := c.Statement.ConnPool.(*sql.Conn)
		if !ok {
			return fmt.Errorf("store: audit append: unexpected connection %T", c.Statement.ConnPool)
		}
		return c.Transaction(func(tx *gorm.DB) error { return s.appendEventsOn(tx, evs, conn) })
	})
	return s.classify(err)
}

// auditColumns are audit_events' columns in the order copyAuditRows sends them.
var auditColumns = []string{"id", "workspace_id", "seq", "at", "type", "actor", "connection_id", "outcome",
	"error_code", "data", "prev_hash", "hash"}

// copyAuditRows sends linked events with COPY on conn, inside the transaction open on it
// (database/sql lets Raw use a connection between a transaction's statements; pgx's
// CopyFrom runs in whatever transaction the session is in).
func copyAuditRows(tx *gorm.DB, conn *sql.Conn, evs []*audit.Event) error {
	ctx := tx.Statement.Context
	err := conn.Raw(func(dc any) error {
		pc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		n, err := pc.Conn().CopyFrom(ctx, pgx.Identifier{"audit_events"}, auditColumns,
			pgx.CopyFromSlice(len(evs), func(i int) ([]any, error) {
				e := evs[i]
				return []any{e.ID, e.WorkspaceID, e.Seq, e.At, e.Type, e.Actor, e.ConnectionID,
					e.Outcome, e.ErrorCode, e.Data, e.PrevHash, e.Hash}, nil
			}))
		if err == nil && n != int64(len(evs)) {
			err = fmt.Errorf("copied %d of %d rows", n, len(evs))
		}
		return err
	})
	if err != nil {
		if t, ok := tx.Dialector.(gorm.ErrorTranslator); ok {
			err = t.Translate(err) // as insertAuditRows: duplicate key → ErrConflict
		}
		return fmt.Errorf("store: copy audit events: %w", err)
	}
	return nil
}

// ListAudit returns a workspace's events after the event afterID (oldest first).
func (s *Store) ListAudit(ctx context.Context, workspaceID, afterID string, limit int) ([]audit.Event, error) {
	q := s.db.WithContext(ctx).Where("workspace_id = ?", workspaceID)
	if afterID != "" {
		var after auditRow
		err := s.db.WithContext(ctx).Select("seq").Where("workspace_id = ? AND id = ?", workspaceID, afterID).Take(&after).Error
		if err != nil {
			return nil, s.classify(err)
		}
		q = q.Where("seq > ?", after.Seq)
	}
	var rows []auditRow
	if err := q.Order("seq").Limit(limit).Find(&rows).Error; err != nil {
		return nil, s.classify(err)
	}
	out := make([]audit.Event, len(rows))
	for i, r := range rows {
		out[i] = audit.Event(r)
	}
	return out, nil
}

// VerifyResult is the outcome of verifying one workspace's chain.
type VerifyResult struct {
	OK            bool
	Events        int
	Head          string
	FirstBadEvent string
}

func okSoFar(v *audit.Verifier) bool { ok, _, _, _ := v.Result(); return ok }

// AuditWorkspaces lists the workspaces that have a chain.
func (s *Store) AuditWorkspaces(ctx context.Context) ([]string, error) {
	var out []string
	err := s.db.WithContext(ctx).Model(&auditHead{}).Order("workspace_id").Pluck("workspace_id", &out).Error
	if err != nil {
		return nil, fmt.Errorf("store: %w", s.classify(err))
	}
	return out, nil
}

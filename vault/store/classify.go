package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	sqlitedriver "github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/vault"
)

// classify maps driver errors onto the store's sentinels, keeping the chain.
func (s *Store) classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrUnavailable),
		errors.Is(err, vault.ErrDEKExists):
		return err
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, context.Canceled):
		return err
	case unreachable(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// PostgreSQL error codes (class 57, operator intervention) that mean the server is going
// away or not yet accepting work.
var pgUnavailableCodes = map[string]bool{
	"57P01": true, // admin_shutdown
	"57P02": true, // crash_shutdown
	"57P03": true, // cannot_connect_now: starting up or shutting down
}

// SQLite primary result codes that mean another connection holds the database.
const (
	sqliteBusy   = 5 // SQLITE_BUSY: the database file is locked
	sqliteLocked = 6 // SQLITE_LOCKED: a table is locked
)

// unreachable reports whether err means the database could not be reached, went away
// mid-call or is too busy to answer, judged by the error's type and never by its text:
// connection failures (pgconn.ConnectError, net.Error, a refused, reset or broken
// connection), a connection that ended (io.EOF, io.ErrUnexpectedEOF, driver.ErrBadConn,
// sql.ErrConnDone, pgconn.ErrConnClosed), a deadline, a PostgreSQL server shutting down
// or starting up, and SQLite's busy and locked results.
func unreachable(err error) bool {
	var (
		connect *pgconn.ConnectError
		netErr  net.Error
		pgErr   *pgconn.PgError
		lite    *sqlitedriver.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, sql.ErrConnDone), errors.Is(err, driver.ErrBadConn),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &connect), errors.As(err, &netErr):
		return true
	case errors.As(err, &pgErr):
		return pgUnavailableCodes[pgErr.Code]
	case errors.As(err, &lite):
		code := lite.Code() & 0xff // extended result codes keep the primary code in the low byte
		return code == sqliteBusy || code == sqliteLocked
	}
	return false
}

package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite" // registers "sqlite" for database/sql
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
)

// realConnectError is what pgx answers when nothing listens on the port.
func realConnectError(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := pgconn.Connect(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	require.Error(t, err)
	return err
}

// realSQLiteBusy is what SQLite answers a writer while another connection holds an
// exclusive lock on the file.
func realSQLiteBusy(t *testing.T) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "busy.db")
	holder, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = holder.Close() })
	conn, err := holder.Conn(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = conn.ExecContext(t.Context(), "BEGIN EXCLUSIVE")
	require.NoError(t, err)
	other, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })
	_, err = other.ExecContext(t.Context(), "CREATE TABLE t (x INTEGER)")
	require.Error(t, err)
	return err
}

func TestUnreachableJudgesByErrorType(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"pgx connect error":         {realConnectError(t), true},
		"dial refused":              {&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		"dns failure":               {&net.DNSError{Err: "no such host", Name: "db.internal", IsNotFound: true}, true},
		"connection reset":          {fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		"broken pipe":               {fmt.Errorf("write: %w", syscall.EPIPE), true},
		"eof":                       {fmt.Errorf("receive message: %w", io.EOF), true},
		"unexpected eof":            {fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), true},
		"bad driver connection":     {driver.ErrBadConn, true},
		"connection done":           {sql.ErrConnDone, true},
		"pgx connection closed":     {fmt.Errorf("query: %w", pgconn.ErrConnClosed), true},
		"deadline":                  {fmt.Errorf("query: %w", context.DeadlineExceeded), true},
		"postgres shutting down":    {&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, true},
		"postgres starting up":      {&pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, true},
		"sqlite busy":               {realSQLiteBusy(t), true},
		"unique violation":          {&pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint"}, false},
		"not found":                 {gorm.ErrRecordNotFound, false},
		"canceled":                  {context.Canceled, false},
		"text that says EOF":        {errors.New(`invalid input syntax: "EOF"`), false},
		"text that says refused":    {errors.New("value connection refused is not allowed"), false},
		"text that says locked":     {errors.New("check constraint: database is locked"), false},
		"text that says conn close": {errors.New("conn closed"), false},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, unreachable(tc.err), "%v", tc.err)
		})
	}
}

func TestClassifyKeepsNotFoundAndMarksUnavailable(t *testing.T) {
	var s *Store
	require.ErrorIs(t, s.classify(gorm.ErrRecordNotFound), ErrNotFound)
	require.False(t, errors.Is(s.classify(gorm.ErrRecordNotFound), ErrUnavailable))
	require.ErrorIs(t, s.classify(fmt.Errorf("x: %w", io.EOF)), ErrUnavailable)
	require.ErrorIs(t, s.classify(fmt.Errorf("x: %w", io.EOF)), io.EOF, "the chain is kept")
	require.NotErrorIs(t, s.classify(errors.New("EOF")), ErrUnavailable, "text alone is not a connection failure")
	require.ErrorIs(t, s.classify(gorm.ErrDuplicatedKey), ErrConflict)
	require.Nil(t, s.classify(nil))
}

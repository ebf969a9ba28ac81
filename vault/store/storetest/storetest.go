// Package storetest opens migrated stores for tests: a SQLite file in a temp dir, and a
// fresh database on a real PostgreSQL server (AUTHPIPE_TEST_POSTGRES_URL, default
// postgres://postgres@127.0.0.1:5432/postgres). On CI (CI=true) a missing PostgreSQL fails
// the test; locally it skips loudly.
//
// With AUTHPIPE_TEST_PGBOUNCER_URL set (scripts/test.sh's PgBouncer pass), the fresh
// databases are still created and dropped on the server directly, but the stores connect
// to them through that PgBouncer (transaction pooling), and ListenURL gives the direct
// connection that AUTHPIPE_DATABASE_LISTEN_URL names in that set-up.
package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the admin connection that creates test databases

	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Dialects are the stores every suite runs against.
var Dialects = []string{store.SQLite, store.Postgres}

// ForEachDialect runs fn once per dialect on a fresh, migrated store.
func ForEachDialect(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(d, func(t *testing.T) { fn(t, Open(t, d)) })
	}
}

// Open returns a fresh, migrated store of the dialect, closed (and dropped) at cleanup.
func Open(t testing.TB, dialect string, opts ...store.Option) *store.Store {
	t.Helper()
	u := URL(t, dialect)
	if l := ListenURL(t, u); l != "" {
		opts = append([]store.Option{store.WithListenURL(l)}, opts...)
	}
	s, err := store.Open(context.Background(), u, opts...)
	if err != nil {
		t.Fatalf("open %s store: %v", dialect, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate %s: %v", dialect, err)
	}
	return s
}

// URL returns the URL of a fresh, empty database of the dialect.
func URL(t testing.TB, dialect string) string {
	t.Helper()
	switch dialect {
	case store.SQLite:
		return "sqlite://" + filepath.Join(t.TempDir(), "authpipe.db")
	case store.Postgres:
		return freshPostgres(t)
	}
	t.Fatalf("unknown dialect %q", dialect)
	return ""
}

// AdminURL is the PostgreSQL server the tests use.
func AdminURL() string {
	if u := os.Getenv("AUTHPIPE_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// RequireOrSkip fails on CI and skips locally, loudly, when a real dependency is missing.
func RequireOrSkip(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required on CI: %v", what, err)
	}
	t.Skipf("!!! SKIPPING: %s is not available here (%v). Run `make test`, which provides it.", what, err)
}

func freshPostgres(t testing.TB) string {
	t.Helper()
	admin := AdminURL()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		RequireOrSkip(t, "PostgreSQL", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		RequireOrSkip(t, "PostgreSQL", err)
	}
	name := "authpipe_test_" + ids.Random(10)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		_ = db.Close()
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		_ = db.Close()
	})
	base := admin
	if p := os.Getenv(PgBouncerEnv); p != "" {
		base = p
	}
	return withDatabase(t, base, name)
}

// PgBouncerEnv names the PgBouncer that the stores of a PgBouncer pass connect through.
const PgBouncerEnv = "AUTHPIPE_TEST_PGBOUNCER_URL"

// ThroughPgBouncer reports whether this run's PostgreSQL stores connect through PgBouncer.
func ThroughPgBouncer() bool { return os.Getenv(PgBouncerEnv) != "" }

// ListenURL returns the direct (not pooled) URL of the database that databaseURL names:
// what AUTHPIPE_DATABASE_LISTEN_URL is set to when the stores go through PgBouncer; ""
// when they do not, or for SQLite.
func ListenURL(t testing.TB, databaseURL string) string {
	t.Helper()
	if !ThroughPgBouncer() || !strings.HasPrefix(databaseURL, "postgres") {
		return ""
	}
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("database URL: %v", err)
	}
	return withDatabase(t, AdminURL(), strings.TrimPrefix(u.Path, "/"))
}

func withDatabase(t testing.TB, base, name string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("PostgreSQL test URL: %v", err)
	}
	u.Path = "/" + name
	return fmt.Sprint(u)
}

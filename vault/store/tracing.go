package store

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/tracing"
)

// Database spans (internal/tracing): one client span per gorm call, named by operation and
// table ("db.query connections"), with the dialect, operation, table and rows affected.
// Never the SQL's arguments, and not its text either (a raw statement could inline one).
// With tracing off the callbacks load one atomic and return.

const spanKey = "authpipe:span"

func (s *Store) registerTracingCallbacks() error {
	cb := s.db.Callback()
	const b, a = "authpipe:trace_before", "authpipe:trace_after"
	start := func(op string) func(*gorm.DB) { return func(db *gorm.DB) { s.startSpan(db, op) } }
	return errors.Join(
		cb.Create().Before("gorm:create").Register(b, start("insert")),
		cb.Create().After("gorm:create").Register(a, endSpan),
		cb.Query().Before("gorm:query").Register(b, start("select")),
		cb.Query().After("gorm:query").Register(a, endSpan),
		cb.Update().Before("gorm:update").Register(b, start("update")),
		cb.Update().After("gorm:update").Register(a, endSpan),
		cb.Delete().Before("gorm:delete").Register(b, start("delete")),
		cb.Delete().After("gorm:delete").Register(a, endSpan),
		cb.Row().Before("gorm:row").Register(b, start("row")),
		cb.Row().After("gorm:row").Register(a, endSpan),
		cb.Raw().Before("gorm:raw").Register(b, start("raw")),
		cb.Raw().After("gorm:raw").Register(a, endSpan),
	)
}

func (s *Store) startSpan(db *gorm.DB, op string) {
	if !tracing.Enabled() || db.Statement.Context == nil {
		return
	}
	table := db.Statement.Table
	if table == "" && db.Statement.Schema != nil {
		table = db.Statement.Schema.Table
	}
	name := "db." + op
	if table != "" {
		name += " " + table
	}
	ctx, span := tracing.Start(db.Statement.Context, name, trace.SpanKindClient)
	if !span.IsRecording() {
		return
	}
	system := "sqlite"
	if s.dialect == Postgres {
		system = "postgresql"
	}
	span.SetAttributes(attribute.String("db.system.name", system), attribute.String("db.operation.name", op),
		attribute.String("db.collection.name", table))
	db.InstanceSet(spanKey, dbSpan{span: span, parent: db.Statement.Context})
	db.Statement.Context = ctx
}

// dbSpan is a call's span and the context to restore when it ends (a statement reused by
// a second finisher must not nest under the first one's span).
type dbSpan struct {
	span   trace.Span
	parent context.Context
}

func endSpan(db *gorm.DB) {
	v, ok := db.InstanceGet(spanKey)
	if !ok {
		return
	}
	st, ok := v.(dbSpan)
	if !ok {
		return
	}
	db.InstanceSet(spanKey, nil)
	db.Statement.Context = st.parent
	span := st.span
	span.SetAttributes(attribute.Int64("db.response.returned_rows", db.RowsAffected))
	err := db.Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		err = nil // an answer, not a failure
	}
	tracing.End(span, err)
}

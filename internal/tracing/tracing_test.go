package tracing_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/authpipe/authpipe-proxy/internal/tracing"
)

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

// Off unless the standard variables configure an exporter; unknown exporters and
// protocols are configuration errors, not silently ignored.
func TestSetupIsOffUnlessConfigured(t *testing.T) {
	ctx := context.Background()
	for name, vars := range map[string]map[string]string{
		"nothing set":    {},
		"exporter none":  {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
		"sdk disabled":   {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"},
		"only a sampler": {"OTEL_TRACES_SAMPLER": "always_on"},
	} {
		stop, err := tracing.Setup(ctx, env(vars))
		require.NoError(t, err, name)
		require.False(t, tracing.Enabled(), name)
		require.NoError(t, stop(ctx))
	}
	for name, vars := range map[string]map[string]string{
		"zipkin": {"OTEL_TRACES_EXPORTER": "zipkin"},
		"grpc":   {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
	} {
		_, err := tracing.Setup(ctx, env(vars))
		require.ErrorIs(t, err, tracing.ErrConfig, name)
		require.False(t, tracing.Enabled(), name)
	}
	// An endpoint turns it on (the exporter connects lazily: nothing listens here).
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	stop, err := tracing.Setup(ctx, env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}))
	require.NoError(t, err)
	require.True(t, tracing.Enabled())
	sctx, cancel := context.WithTimeout(ctx, 0)
	defer cancel()
	_ = stop(sctx) // nothing to flush to
	require.False(t, tracing.Enabled())
}

// With tracing off, Start hands back the caller's context and allocates nothing.
func TestStartOffAllocatesNothing(t *testing.T) {
	tracing.Use(nil)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		c, span := tracing.Start(ctx, "x", trace.SpanKindInternal)
		tracing.End(span, nil)
		if c != ctx {
			t.Fatal("a new context")
		}
	})
	require.Zero(t, allocs)
}

// Log lines within a span carry its trace and span ids; others carry none.
func TestLogHandlerAddsTraceIDs(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tracing.Use(tp)
	t.Cleanup(func() { tracing.Use(nil) })
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "x")
	log.InfoContext(context.Background(), "no span")
	require.NotContains(t, buf.String(), "trace_id")
	ctx, span := tracing.Start(context.Background(), "op", trace.SpanKindInternal)
	log.InfoContext(ctx, "in a span")
	tracing.End(span, errors.New("SENTINEL error text"))
	sc := span.SpanContext()
	require.Contains(t, buf.String(), `"trace_id":"`+sc.TraceID().String()+`"`)
	require.Contains(t, buf.String(), `"span_id":"`+sc.SpanID().String()+`"`)
	// A failed span names the error's type, never its text.
	got := exp.GetSpans()
	require.Len(t, got, 1)
	require.Equal(t, "*errors.errorString", got[0].Status.Description)
}

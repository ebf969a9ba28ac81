// Package tracing is the OpenTelemetry tracing of the server: off unless the standard
// OTEL_* variables configure an exporter (Setup), and free when off — every helper checks
// Enabled (one atomic load) before it builds anything, so the token hot path allocates
// nothing more with tracing off.
//
// What a span may carry: route templates, methods, status codes, host names, operation and
// table names, provider keys, KEK backends, ids of connections and workspaces. Never a
// token, key, secret, query string or SQL argument (the sentinel tests scan span
// attributes and events).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of every span the server makes.
const ScopeName = "github.com/authpipe/authpipe-proxy"

// ServiceName is service.name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES says
// otherwise.
const ServiceName = "authpipe-proxy"

var (
	enabled atomic.Bool
	tracer  atomic.Pointer[trace.Tracer]
	// W3C trace context only (traceparent, tracestate): no baggage, which could carry
	// anything a caller put there into our spans' context.
	propagator propagation.TextMapPropagator = propagation.TraceContext{}
)

// Enabled reports whether spans are recorded (Setup configured an exporter, or a test
// called Use).
func Enabled() bool { return enabled.Load() }

// Use makes tp the provider of the server's spans and turns tracing on; a nil tp turns it
// off. Setup calls it; tests call it with an SDK provider over tracetest's in-memory
// exporter.
func Use(tp trace.TracerProvider) {
	if tp == nil {
		enabled.Store(false)
		t := trace.Tracer(noop.NewTracerProvider().Tracer(ScopeName))
		tracer.Store(&t)
		return
	}
	t := tp.Tracer(ScopeName)
	tracer.Store(&t)
	enabled.Store(true)
}

// Start starts a span named name as a child of ctx's span. With tracing off it returns
// ctx and a non-recording span, allocating nothing. Set attributes only on a recording
// span (span.IsRecording()), or through the helpers of this package.
func Start(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	if !enabled.Load() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return (*tracer.Load()).Start(ctx, name, trace.WithSpanKind(kind))
}

// End ends span, marking it failed with err's type (never its message, which could quote
// a provider's answer) when err is not nil. With tracing off it does nothing.
func End(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, fmt.Sprintf("%T", err))
	}
	span.End()
}

// Set sets attributes on a recording span.
func Set(span trace.Span, kv ...attribute.KeyValue) {
	if span.IsRecording() {
		span.SetAttributes(kv...)
	}
}

// Extract returns ctx with the W3C trace context of an inbound request's headers.
func Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	return propagator.Extract(ctx, carrier)
}

// ErrConfig is wrapped by Setup's configuration errors.
var ErrConfig = errors.New("tracing: configuration")

// Setup turns tracing on when the standard variables configure an exporter, and returns
// the function that flushes and stops it (a no-op when off). getenv reads the environment.
//
//   - OTEL_SDK_DISABLED=true: off.
//   - OTEL_TRACES_EXPORTER: "none" is off, "otlp" is on; unset, tracing is on when
//     OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set. Any other
//     exporter is a configuration error.
//   - OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL: only "http/protobuf" (the default) is built in.
//   - The OTLP exporter reads its own variables (endpoint, headers, timeout, TLS
//     certificates, compression), the SDK its sampler (OTEL_TRACES_SAMPLER, _ARG: the
//     default is parentbased_always_on), and the resource OTEL_SERVICE_NAME and
//     OTEL_RESOURCE_ATTRIBUTES.
func Setup(ctx context.Context, getenv func(string) string) (shutdown func(context.Context) error, err error) {
	off := func(context.Context) error { return nil }
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return off, nil
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return off, nil
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return off, nil
		}
	case "otlp":
	default:
		return off, fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q: only otlp and none are built in", ErrConfig, exp)
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		return off, fmt.Errorf("%w: OTLP protocol %q: only http/protobuf is built in", ErrConfig, proto)
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return off, fmt.Errorf("%w: OTLP exporter: %v", ErrConfig, err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", ServiceName)))
	if err == nil {
		res, err = resource.Merge(res, envResource(ctx))
	}
	if err != nil {
		return off, fmt.Errorf("%w: resource: %v", ErrConfig, err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	Use(tp)
	return func(ctx context.Context) error {
		Use(nil)
		return tp.Shutdown(ctx)
	}, nil
}

// envResource is OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (an invalid entry is
// skipped, not fatal).
func envResource(ctx context.Context) *resource.Resource {
	r, err := resource.New(ctx, resource.WithFromEnv())
	if err != nil && r == nil {
		return resource.Empty()
	}
	return r
}

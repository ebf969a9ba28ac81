package tracing

import (
	"context"
	"net/http"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// StartClient starts a client span for an outbound HTTP call of kind name (e.g.
// "oauth2.refresh", "forward") to rawURL. It records the method and the URL's host only: never the
// path or query (a provider's URL can carry a key), never a header. Our trace context is
// NOT injected into the request: providers and forwarded-to APIs are third parties, and
// our trace ids are no business of theirs.
func StartClient(ctx context.Context, name, method, rawURL string) (context.Context, trace.Span) {
	ctx, span := Start(ctx, name, trace.SpanKindClient)
	if span.IsRecording() {
		host := ""
		if u, err := url.Parse(rawURL); err == nil {
			host = u.Hostname()
		}
		span.SetAttributes(attribute.String("http.request.method", method), attribute.String("server.address", host))
	}
	return ctx, span
}

// StartClientHost is StartClient for a caller that has the host already.
func StartClientHost(ctx context.Context, name, method, host string) (context.Context, trace.Span) {
	ctx, span := Start(ctx, name, trace.SpanKindClient)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("http.request.method", method), attribute.String("server.address", host))
	}
	return ctx, span
}

// EndHTTP ends a client span with the answer's status (0: no answer) and err's type.
func EndHTTP(span trace.Span, status int, err error) {
	if !span.IsRecording() {
		return
	}
	if status > 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 && err == nil {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	}
	End(span, err)
}

// ServerSpan starts the server span of an inbound request whose route template is route
// ("" before routing knows it), continuing the caller's W3C trace context if it sent one.
// The span is named "METHOD route" and carries method and route only: never the raw path
// (it has ids and, on a misused route, a token) nor the query.
func ServerSpan(r *http.Request, route string) (context.Context, trace.Span) {
	ctx := Extract(r.Context(), propagationHeader(r.Header))
	name := r.Method + " " + route
	if route == "" {
		name = r.Method
	}
	ctx, span := Start(ctx, name, trace.SpanKindServer)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", route))
	}
	return ctx, span
}

// EndServer ends a server span with the response status (5xx marks it failed).
func EndServer(span trace.Span, status int) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// propagationHeader reads only the W3C trace context headers of h.
type propagationHeader http.Header

func (h propagationHeader) Get(k string) string { return http.Header(h).Get(k) }
func (h propagationHeader) Set(string, string)  {}
func (h propagationHeader) Keys() []string      { return []string{"traceparent", "tracestate"} }

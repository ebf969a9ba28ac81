package proxy_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/authpipe/authpipe-proxy/internal/tracing"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// spanTree indexes exported spans by id, for walking parents.
type spanTree struct {
	spans tracetest.SpanStubs
	byID  map[trace.SpanID]tracetest.SpanStub
}

func newSpanTree(s tracetest.SpanStubs) spanTree {
	t := spanTree{spans: s, byID: map[trace.SpanID]tracetest.SpanStub{}}
	for _, sp := range s {
		t.byID[sp.SpanContext.SpanID()] = sp
	}
	return t
}

// named returns the spans called name.
func (t spanTree) named(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range t.spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// under says whether s descends from ancestor.
func (t spanTree) under(s, ancestor tracetest.SpanStub) bool {
	for p := s.Parent.SpanID(); p.IsValid(); {
		if p == ancestor.SpanContext.SpanID() {
			return true
		}
		parent, ok := t.byID[p]
		if !ok {
			return false
		}
		p = parent.Parent.SpanID()
	}
	return false
}

// descendants returns the names of the spans under root.
func (t spanTree) descendants(root tracetest.SpanStub) map[string]tracetest.SpanStub {
	out := map[string]tracetest.SpanStub{}
	for _, s := range t.spans {
		if t.under(s, root) {
			out[s.Name] = s
		}
	}
	return out
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// spanText is everything a span exports that could carry a value: name, attributes,
// events and their attributes, status, links, resource.
func spanText(s tracetest.SpanStub) string {
	var b strings.Builder
	b.WriteString(s.Name + " " + s.Status.Description + "\n")
	for _, kv := range s.Attributes {
		b.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
	}
	for _, e := range s.Events {
		b.WriteString(e.Name + "\n")
		for _, kv := range e.Attributes {
			b.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
		}
	}
	if s.Resource != nil {
		for _, kv := range s.Resource.Attributes() {
			b.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
		}
	}
	return b.String()
}

// useInMemoryTracing turns tracing on for this test, exporting to memory.
func useInMemoryTracing(t *testing.T) *tracetest.InMemoryExporter {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tracing.Use(tp)
	t.Cleanup(func() { tracing.Use(nil); _ = tp.Shutdown(context.Background()) })
	return exp
}

// The span trees of a token read (with a cold DEK cache) and of a forced refresh, exported
// to the SDK's in-memory exporter; no span carries a secret (the sentinel scan covers
// names, attributes, events and status); log lines of a traced request carry its ids.
func TestTracingSpanTrees(t *testing.T) {
	exp := useInMemoryTracing(t)
	f := newFlowEnv(t, store.SQLite, oauthtest.Options{AutoLogin: true}, map[string]string{"AUTHPIPE_ACCESS_LOG": "all"})
	id := f.connect("alice")
	access, refresh := f.storedTokens(id)
	f.sentinel(refresh) // the access token is in token responses: spans only (below)
	secrets := []string{access, refresh, f.key}

	// A token read with the DEK cache emptied: DEK read, KEK unwrap.
	f.h.app.Creds.Forget(store.DefaultWorkspaceID)
	exp.Reset()
	require.Equal(t, access, f.token(id))
	tree := newSpanTree(exp.GetSpans())
	reads := tree.named("GET /v1/connections/:id/token")
	require.Len(t, reads, 1)
	read := reads[0]
	require.Equal(t, trace.SpanKindServer, read.SpanKind)
	require.Equal(t, "/v1/connections/:id/token", attr(read, "http.route"))
	require.Equal(t, "GET", attr(read, "http.request.method"))
	require.Equal(t, "200", attr(read, "http.response.status_code"))
	under := tree.descendants(read)
	require.Contains(t, under, "vault.dek_unwrap")
	require.Contains(t, under, "kms.unwrap")
	require.True(t, tree.under(under["kms.unwrap"], under["vault.dek_unwrap"]), "the KEK call is the unwrap's")
	require.Equal(t, "local", attr(under["kms.unwrap"], "kms.backend"))
	var db int
	for name, s := range under {
		if strings.HasPrefix(name, "db.") {
			db++
			require.Equal(t, "sqlite", attr(s, "db.system.name"))
			require.Equal(t, trace.SpanKindClient, s.SpanKind)
		}
	}
	require.NotZero(t, db, "database calls are spans")
	require.Contains(t, f.h.logs.String(), read.SpanContext.TraceID().String(), "the access log line carries the trace id")

	// A forced refresh: server span → refresh → the provider's token call.
	exp.Reset()
	r := f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/refresh", f.key, nil), 200, "")
	require.Equal(t, "active", r.Body["status"])
	newAccess, newRefresh := f.storedTokens(id)
	f.sentinel(newRefresh)
	secrets = append(secrets, newAccess, newRefresh)
	tree = newSpanTree(exp.GetSpans())
	posts := tree.named("POST /v1/connections/:id/refresh")
	require.Len(t, posts, 1)
	refreshes := tree.named("refresh")
	require.Len(t, refreshes, 1)
	require.True(t, tree.under(refreshes[0], posts[0]))
	require.Equal(t, "fosite", attr(refreshes[0], "authpipe.provider"))
	require.Equal(t, id, attr(refreshes[0], "authpipe.connection_id"))
	calls := tree.named("oauth2.refresh")
	require.Len(t, calls, 1)
	require.True(t, tree.under(calls[0], refreshes[0]))
	require.Equal(t, trace.SpanKindClient, calls[0].SpanKind)
	require.Equal(t, "127.0.0.1", attr(calls[0], "server.address"))
	require.Equal(t, codes.Unset, calls[0].Status.Code, "a successful grant")
	require.Contains(t, tree.descendants(refreshes[0]), "db.update connections", "the commit is traced")

	// An inbound W3C traceparent is continued.
	exp.Reset()
	req, err := http.NewRequest("GET", f.h.srv.URL+"/v1/connections/"+id+"/token?x=SENTINELquery", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+f.key)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	reads = newSpanTree(exp.GetSpans()).named("GET /v1/connections/:id/token")
	require.Len(t, reads, 1)
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", reads[0].SpanContext.TraceID().String())
	require.Equal(t, "00f067aa0ba902b7", reads[0].Parent.SpanID().String())

	// Sentinels: no token, key or secret in any span of the whole test (tokens were
	// collected above; the raw path and query never appear either).
	all := exp.GetSpans()
	require.NotEmpty(t, all)
	sentinels := append([]string{clientSecret, bootstrapKey, "SENTINEL", id + "/token"}, secrets...)
	for _, s := range all {
		text := spanText(s)
		for _, v := range sentinels {
			require.NotContains(t, text, v, "span %q carries a secret or a raw path", s.Name)
		}
	}
	f.noLeaks()
}

// A forwarded call is a client span under the request's server span, with the upstream's
// host and status only. The proxy injects no trace context of its own: a traceparent the
// caller sent is forwarded as sent, like any other header of the caller's.
func TestTracingForwardSpan(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	up := newUpstream(t)
	id := echoProvider(t, h, up.URL+"/base/")
	reader := h.createKey("tokens:read")
	exp := useInMemoryTracing(t)
	hdr := bearerHdr(reader, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	res, body := send(t, h.srv.URL, "POST", "/v1/proxy/"+id+"/echo?q=SENTINELquery", hdr, strings.NewReader(`{"a":1}`))
	require.Equal(t, http.StatusOK, res.StatusCode, "body: %s", body)
	got := up.last(t)
	require.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", got.Header.Get("traceparent"),
		"the caller's header as sent: none of our span ids")

	tree := newSpanTree(exp.GetSpans())
	fwd := tree.named("forward")
	require.Len(t, fwd, 1)
	servers := tree.named("POST /v1/proxy/:connection_id/*path")
	if len(servers) == 0 { // the route template's spelling is the router's
		for _, s := range tree.spans {
			if s.SpanKind == trace.SpanKindServer {
				servers = append(servers, s)
			}
		}
	}
	require.Len(t, servers, 1)
	require.True(t, tree.under(fwd[0], servers[0]))
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", fwd[0].SpanContext.TraceID().String())
	require.Equal(t, "127.0.0.1", attr(fwd[0], "server.address"))
	require.Equal(t, "200", attr(fwd[0], "http.response.status_code"))
	for _, s := range tree.spans {
		text := spanText(s)
		for _, v := range []string{upstreamKey, reader, bootstrapKey, "SENTINEL", "/base/echo", id + "/echo"} {
			require.NotContains(t, text, v, "span %q", s.Name)
		}
	}
}

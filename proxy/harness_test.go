package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/providers"
	"github.com/authpipe/authpipe-proxy/proxy"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// bootstrapKey is the harness's AUTHPIPE_BOOTSTRAP_API_KEY, and a sentinel: it must never
// appear in a log line, an error body or an audit event.
const bootstrapKey = "ap_SENTINELbootstrapKEYxxxxxxxxxxxxxxxxxxxxx"

// syncBuffer collects log output from concurrent goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness is a real server (the app's own wiring) on a real store, driven over HTTP.
type harness struct {
	t    *testing.T
	app  *app.App
	srv  *httptest.Server
	logs *syncBuffer
	vars map[string]string // the settings it started with (restart)
	// bodies holds every response body the harness saw, for the sentinel scan.
	mu     sync.Mutex
	bodies []string
	// anomaliesExpected: the test provokes security.anomaly findings on purpose.
	anomaliesExpected bool
}

func newHarness(t *testing.T, dialect string, env map[string]string) *harness {
	t.Helper()
	dir := t.TempDir()
	vars := map[string]string{
		"AUTHPIPE_DATABASE_URL":          storetest.URL(t, dialect),
		"AUTHPIPE_KEK_URI":               "local://" + filepath.Join(dir, "kek.key"),
		"AUTHPIPE_CLIENT_SECRET_KEK_URI": "local://" + filepath.Join(dir, "cs-kek.key"),
		"AUTHPIPE_BOOTSTRAP_API_KEY":     bootstrapKey,
		"AUTHPIPE_LOG_LEVEL":             "debug",
	}
	for k, v := range env {
		vars[k] = v
	}
	withListenURL(t, vars)
	return startHarness(t, vars)
}

// withListenURL: in the PgBouncer pass (storetest), LISTEN goes on a direct connection, as
// documented, unless the test set AUTHPIPE_DATABASE_LISTEN_URL itself.
func withListenURL(t *testing.T, vars map[string]string) {
	t.Helper()
	if _, set := vars["AUTHPIPE_DATABASE_LISTEN_URL"]; !set {
		if l := storetest.ListenURL(t, vars["AUTHPIPE_DATABASE_URL"]); l != "" {
			vars["AUTHPIPE_DATABASE_LISTEN_URL"] = l
		}
	}
}

// restart starts another server with the same settings on the same database and keys, as
// a restarted process would (this one keeps running).
func (h *harness) restart() *harness {
	h.t.Helper()
	return startHarness(h.t, h.vars)
}

func startHarness(t *testing.T, vars map[string]string) *harness {
	t.Helper()
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	logs := &syncBuffer{}
	a, err := app.New(context.Background(), cfg, app.WithLogOutput(logs))
	require.NoError(t, err)
	require.NoError(t, a.Bootstrap(context.Background()))
	a.Server.SetReady(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Audit.Run(ctx); close(done) }()
	h := &harness{t: t, app: a, logs: logs, srv: httptest.NewServer(a.Server.Handler()), vars: vars}
	t.Cleanup(func() {
		h.srv.Close()
		a.Audit.Stop(context.Background())
		cancel()
		<-done
		a.Close()
		h.noAnomaly()
	})
	return h
}

// noAnomaly fails the test when the anomaly detection fired on its traffic: under the
// default thresholds a test's traffic is never a finding (docs/incident-response.md),
// unless the test asks for one (anomaliesExpected).
func (h *harness) noAnomaly() {
	if h.anomaliesExpected {
		return
	}
	var found []string
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(l, `"msg":"security anomaly"`) {
			found = append(found, l)
		}
	}
	if len(found) > 0 {
		h.t.Errorf("the anomaly detection fired on this test's traffic:\n%s", strings.Join(found, "\n"))
	}
}

type resp struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (h *harness) do(method, path, key string, body any) resp {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(h.t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	require.NoError(h.t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := h.srv.Client().Do(req)
	require.NoError(h.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(h.t, err)
	h.mu.Lock()
	h.bodies = append(h.bodies, string(raw))
	h.mu.Unlock()
	out := resp{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	if len(raw) > 0 && (raw[0] == '{') {
		require.NoError(h.t, json.Unmarshal(raw, &out.Body), "body: %s", raw)
	}
	return out
}

// expect asserts a status and, for errors, the problem+json shape and code.
func (h *harness) expect(r resp, status int, code string) resp {
	h.t.Helper()
	require.Equal(h.t, status, r.Status, "body: %s", r.Raw)
	if code != "" {
		require.Equal(h.t, "application/problem+json", r.Header.Get("Content-Type"))
		require.Equal(h.t, code, r.Body["code"], "body: %s", r.Raw)
		require.Equal(h.t, "https://authpipe.dev/problems/"+code, r.Body["type"])
		require.EqualValues(h.t, status, r.Body["status"])
	}
	return r
}

// createKey makes an API key with scopes in the bootstrap key's workspace.
func (h *harness) createKey(scopes ...string) string {
	h.t.Helper()
	r := h.expect(h.do("POST", "/v1/api-keys", bootstrapKey, map[string]any{"name": "k", "scopes": scopes}), 201, "")
	return r.Body["key"].(string)
}

// providersFor is a providers service on the harness's store with a second server's URL
// settings (and a provider cache of its own).
func providersFor(t *testing.T, h *harness, cfg proxy.Config) *providers.Service {
	t.Helper()
	cat, err := oauthflow.LoadCatalog()
	require.NoError(t, err)
	svc, err := providers.New(providers.Settings{PublicURL: cfg.PublicURL,
		URLs: providers.URLPolicy{Dev: cfg.Dev, AllowCIDRs: cfg.OutboundAllowCIDRs}}, h.app.Store, h.app.Secrets, cat)
	require.NoError(t, err)
	return svc
}

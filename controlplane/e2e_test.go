package controlplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/controlplane/cptest"
	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// Sentinels: none of these may ever reach the control plane.
const (
	e2eBootstrapKey = "ap_SENTINELbootstrapKEYxxxxxxxxxxxxxxxxxxxxx"
	sentinelPrefix  = "SENTINEL"
)

// running is one proxy process: the app's own wiring and Serve, on a real listener.
type running struct {
	app  *app.App
	base string
	stop func()
}

func startProxy(t *testing.T, env map[string]string) *running {
	t.Helper()
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	cfg.ShutdownDelay = 0 // no drain delay in tests
	a, err := app.New(context.Background(), cfg, app.WithLogOutput(io.Discard), app.WithControlPlaneOptions(
		controlplane.WithIntervals(100*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond),
		controlplane.WithBatching(100, 50*time.Millisecond),
		controlplane.WithBackoff(50*time.Millisecond, 200*time.Millisecond)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, func(s string) { addr <- s }) }()
	r := &running{app: a, base: "http://" + <-addr}
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
		a.Close()
	}
	t.Cleanup(r.stop)
	require.Eventually(t, func() bool {
		res, err := http.Get(r.base + "/readyz")
		if err != nil {
			return false
		}
		_ = res.Body.Close()
		return res.StatusCode == 200
	}, 20*time.Second, 50*time.Millisecond)
	return r
}

// linkedEnv is the settings of a proxy on a fresh database of the dialect, linked to cp
// with its key pinned.
func linkedEnv(t *testing.T, cp *cptest.Server, dialect string) map[string]string {
	dir := t.TempDir()
	return map[string]string{
		"AUTHPIPE_LISTEN_ADDR":              "127.0.0.1:0",
		"AUTHPIPE_DATABASE_URL":             storetest.URL(t, dialect),
		"AUTHPIPE_KEK_URI":                  "local://" + filepath.Join(dir, "kek.key"),
		"AUTHPIPE_CLIENT_SECRET_KEK_URI":    "local://" + filepath.Join(dir, "cs-kek.key"),
		"AUTHPIPE_BOOTSTRAP_API_KEY":        e2eBootstrapKey,
		"AUTHPIPE_CONTROL_PLANE_URL":        cp.URL,
		"AUTHPIPE_CONTROL_PLANE_TOKEN":      cpToken,
		"AUTHPIPE_CONTROL_PLANE_PUBLIC_KEY": cp.PublicKeyBase64(),
	}
}

func (r *running) do(t *testing.T, method, path, key string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, r.base+path, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return res.StatusCode, out
}

// tokenShaped are patterns of credentials that must never cross the boundary.
var tokenShaped = map[string]*regexp.Regexp{
	"authpipe key":   regexp.MustCompile(`ap_[A-Za-z0-9_-]{16,}`),
	"stripe/openai":  regexp.MustCompile(`sk[_-](live_|test_|proj-)?[A-Za-z0-9]{16,}`),
	"github":         regexp.MustCompile(`gh[opsur]_[A-Za-z0-9]{20,}`),
	"google access":  regexp.MustCompile(`ya29\.`),
	"google refresh": regexp.MustCompile(`1//0[A-Za-z0-9_-]{10,}`),
	"jwt":            regexp.MustCompile(`eyJ[A-Za-z0-9_-]{5,}\.eyJ`),
	"base64url run":  regexp.MustCompile(`[A-Za-z0-9_-]{40,}`),
	"code or state":  regexp.MustCompile(`(?i)"(code|state|code_verifier|access_token|refresh_token|api_key|client_secret)"\s*:|[?&](code|state)=`),
}

func TestEndToEndMetadataOnlyOfflineSafeAndSigned(t *testing.T) {
	cp, err := cptest.NewServer(cpToken)
	require.NoError(t, err)
	defer cp.Close()
	// Version 1: a provider configured from the control plane.
	require.NoError(t, cp.SetConfig(controlplane.ConfigDocument{Version: 1, Workspaces: []controlplane.WorkspaceConfig{{
		WorkspaceID: store.DefaultWorkspaceID, Providers: []controlplane.ProviderConfigDoc{{Key: "openai-prod", Template: "openai"}},
	}}}))

	env := linkedEnv(t, cp, store.SQLite)
	p := startProxy(t, env)
	st, body := p.do(t, "POST", "/v1/api-keys", e2eBootstrapKey, map[string]any{"name": "e2e",
		"scopes": []string{"connections:write", "tokens:read", "providers:write", "audit:read"}})
	require.Equal(t, 201, st, "%v", body)
	key := body["key"].(string)

	// The pulled provider is applied.
	require.Eventually(t, func() bool { st, _ := p.do(t, "GET", "/v1/providers/openai-prod", key, nil); return st == 200 },
		10*time.Second, 50*time.Millisecond)

	// API-key connections with sentinel secrets, on the catalog and the pulled provider.
	var conns []string
	for i, provider := range []string{"openai", "openai-prod", "stripe"} {
		st, body := p.do(t, "POST", "/v1/connections", key, map[string]any{"provider": provider, "end_user_id": fmt.Sprintf("user-%d", i),
			"api_key": fmt.Sprintf("sk-%s%02dapikeyvalue0123456789abcdef", sentinelPrefix, i)})
		require.Equal(t, 201, st, "%v", body)
		conns = append(conns, body["id"].(string))
	}
	st, _ = p.do(t, "DELETE", "/v1/connections/"+conns[2], key, nil)
	require.Equal(t, 200, st)
	waitN(t, cp, controlplane.EventConnectionCreated, 3)
	waitN(t, cp, controlplane.EventConnectionDisconnected, 1)
	waitN(t, cp, controlplane.EventHeartbeat, 1)
	waitN(t, cp, controlplane.EventCounts, 1)

	// The control plane goes down. Token serving is unaffected, and changes made now are
	// queued.
	cp.SetDown(true)
	downSince := len(cp.Requests())
	var slowest time.Duration
	for range 200 {
		start := time.Now()
		st, body := p.do(t, "GET", "/v1/connections/"+conns[0]+"/token", key, nil)
		slowest = max(slowest, time.Since(start))
		require.Equal(t, 200, st, "%v", body)
		require.Contains(t, body["api_key"], sentinelPrefix)
	}
	t.Logf("200 token reads with the control plane down; slowest %s", slowest)
	require.Less(t, slowest, 2*time.Second, "token serving never waits on the control plane")
	st, body = p.do(t, "POST", "/v1/connections", key, map[string]any{"provider": "anthropic", "end_user_id": "offline",
		"api_key": "sk-ant-" + sentinelPrefix + "offline0123456789abcdef"})
	require.Equal(t, 201, st, "%v", body)
	offline := body["id"].(string)
	st, _ = p.do(t, "DELETE", "/v1/connections/"+conns[1], key, nil)
	require.Equal(t, 200, st)
	require.Eventually(t, func() bool { return len(cp.Requests()) > downSince+3 }, 10*time.Second, 20*time.Millisecond,
		"the link keeps trying")

	// Restart the proxy while the control plane is still down: the outbox is in the
	// database.
	require.Eventually(t, func() bool {
		n, err := p.app.Store.OutboxLen(context.Background())
		return err == nil && n >= 2
	}, 5*time.Second, 20*time.Millisecond)
	p.stop()
	p = startProxy(t, env)
	time.Sleep(300 * time.Millisecond)
	cp.SetDown(false)
	waitN(t, cp, controlplane.EventConnectionDisconnected, 2)
	evs := waitN(t, cp, controlplane.EventConnectionCreated, 4) // every event received so far
	byConn := map[string][]controlplane.EventType{}
	for _, e := range evs {
		byConn[e.ConnectionID] = append(byConn[e.ConnectionID], e.Type)
	}
	require.Contains(t, byConn[offline], controlplane.EventConnectionCreated, "queued while down, delivered after restart")
	require.Contains(t, byConn[conns[1]], controlplane.EventConnectionDisconnected)

	// A network attacker injects a provider under the old signature: refused, audited.
	cp.SetTamper(true)
	require.Eventually(t, func() bool {
		evs, err := p.app.Store.ListAudit(context.Background(), store.DefaultWorkspaceID, "", 1000)
		require.NoError(t, err)
		for _, e := range evs {
			if e.Type == controlplane.AuditConfigRefused && e.ErrorCode == string(controlplane.ErrorBadSignature) {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond)
	st, _ = p.do(t, "GET", "/v1/providers/injected", key, nil)
	require.Equal(t, 404, st, "the injected provider was not applied")
	cp.SetTamper(false)

	// A valid document with one invalid provider: nothing of it is applied.
	require.NoError(t, cp.SetConfig(controlplane.ConfigDocument{Version: 2, Workspaces: []controlplane.WorkspaceConfig{{
		WorkspaceID: store.DefaultWorkspaceID, Providers: []controlplane.ProviderConfigDoc{
			{Key: "anthropic-prod", Template: "anthropic"},
			{Key: "github-prod", Template: "github"}, // oauth2 without client_id: the providers API refuses it
		},
	}}}))
	require.Eventually(t, func() bool {
		evs, _ := p.app.Store.ListAudit(context.Background(), store.DefaultWorkspaceID, "", 1000)
		for _, e := range evs {
			if e.Type == controlplane.AuditConfigRefused && e.ErrorCode == string(controlplane.ErrorInvalidConfig) {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond)
	st, _ = p.do(t, "GET", "/v1/providers/anthropic-prod", key, nil)
	require.Equal(t, 404, st, "all or nothing")

	// Fixed: version 3 applies both.
	require.NoError(t, cp.SetConfig(controlplane.ConfigDocument{Version: 3, Workspaces: []controlplane.WorkspaceConfig{{
		WorkspaceID: store.DefaultWorkspaceID, Providers: []controlplane.ProviderConfigDoc{
			{Key: "anthropic-prod", Template: "anthropic"},
			{Key: "github-prod", Template: "github", ClientID: "Iv1.public-client-id"},
		},
	}}}))
	require.Eventually(t, func() bool { st, _ := p.do(t, "GET", "/v1/providers/github-prod", key, nil); return st == 200 },
		10*time.Second, 50*time.Millisecond)
	st, _ = p.do(t, "GET", "/v1/providers/anthropic-prod", key, nil)
	require.Equal(t, 200, st)

	// Everything the control plane received: metadata only.
	waitN(t, cp, controlplane.EventCounts, 3)
	got := map[controlplane.EventType]bool{}
	for _, e := range cp.Events() {
		got[e.Type] = true
	}
	for _, typ := range []controlplane.EventType{controlplane.EventConnectionCreated, controlplane.EventConnectionDisconnected,
		controlplane.EventHeartbeat, controlplane.EventCounts} {
		require.True(t, got[typ], "cptest saw %s", typ)
	}
	reqs := cp.Requests()
	require.NotEmpty(t, reqs)
	for i, r := range reqs {
		var hdr strings.Builder
		for k, vs := range r.Header {
			if k == "Authorization" {
				require.Equal(t, []string{"Bearer " + cpToken}, vs)
				continue
			}
			fmt.Fprintf(&hdr, "%s: %s\n", k, strings.Join(vs, ","))
		}
		// Signed checkpoints are long hex and base64url runs by nature: they are checked on
		// their own (TestAuditCheckpointsReachTheControlPlane verifies each signature), and
		// left out of the token-shaped scan here.
		body := checkpointJSON.ReplaceAllString(string(r.Body), `"checkpoint":{}`)
		all := r.Method + " " + r.Path + "?" + r.Query + "\n" + hdr.String() + body
		require.NotContains(t, all, sentinelPrefix, "request %d", i)
		require.NotContains(t, all, e2eBootstrapKey)
		require.NotContains(t, all, key)
		for name, re := range tokenShaped {
			require.False(t, re.MatchString(all), "request %d carries something %s-shaped: %q", i, name, re.FindString(all))
		}
	}
	t.Logf("scanned %d requests, %d events", len(reqs), len(cp.Events()))
}

var checkpointJSON = regexp.MustCompile(`"checkpoint":\{[^{}]*\}`)

// The signed heads of the audit chains reach the control plane: each verifies under the
// deployment's checkpoint key and names the chain's current head.
func TestAuditCheckpointsReachTheControlPlane(t *testing.T) {
	cp, err := cptest.NewServer(cpToken)
	require.NoError(t, err)
	defer cp.Close()
	p := startProxy(t, linkedEnv(t, cp, store.SQLite))
	st, _ := p.do(t, "POST", "/v1/connections", e2eBootstrapKey,
		map[string]any{"provider": "stripe", "end_user_id": "u", "api_key": "sk_test_SENTINEL0123456789abcdef"})
	require.Equal(t, 201, st)
	n, err := p.app.WriteCheckpoints(context.Background())
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 1)

	evs := waitN(t, cp, controlplane.EventAuditCheckpoint, 1)
	heads, err := p.app.Store.AuditHeads(context.Background())
	require.NoError(t, err)
	trusted, err := p.app.Admin.CheckpointKeys().TrustedKeyIDs(context.Background())
	require.NoError(t, err)
	found := false
	for _, e := range evs {
		if e.Type != controlplane.EventAuditCheckpoint {
			continue
		}
		c := e.Checkpoint
		require.NotNil(t, c)
		got := audit.Checkpoint{Version: 1, WorkspaceID: e.WorkspaceID, Seq: c.Seq, Hash: c.Hash, EventID: c.EventID,
			At: c.At, KeyID: c.KeyID, PublicKey: c.PublicKey, Signature: c.Signature}
		require.NoError(t, got.Verify(trusted...), "the control plane's copy verifies under the deployment's key")
		for _, h := range heads {
			if h.WorkspaceID == e.WorkspaceID && h.Seq == c.Seq && h.Hash == c.Hash {
				found = true
			}
		}
	}
	require.True(t, found, "a checkpoint names the chain's current head")
	for _, r := range cp.Requests() {
		require.NotContains(t, string(r.Body), sentinelPrefix)
	}
}

package proxy_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/local"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// switchKEK is a real local KEK that a test can switch off, as a KMS that cannot be
// reached (or refuses) would be.
type switchKEK struct {
	kms.KEK
	down    atomic.Bool
	unwraps atomic.Int64
	pings   atomic.Int64
	hold    sync.RWMutex // write-locked by a test: unwraps wait
}

var _ kms.KEK = (*switchKEK)(nil)

func newSwitchKEK(t *testing.T) *switchKEK {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	k, err := local.New(key)
	require.NoError(t, err)
	return &switchKEK{KEK: k}
}

func (k *switchKEK) Wrap(ctx context.Context, dek, aad []byte) (kms.WrappedKey, error) {
	if k.down.Load() {
		return kms.WrappedKey{}, fmt.Errorf("test KMS switched off: %w", kms.ErrUnavailable)
	}
	return k.KEK.Wrap(ctx, dek, aad)
}

func (k *switchKEK) Unwrap(ctx context.Context, w kms.WrappedKey, aad []byte) ([]byte, error) {
	k.hold.RLock()
	defer k.hold.RUnlock()
	k.unwraps.Add(1)
	if k.down.Load() {
		return nil, fmt.Errorf("test KMS switched off: %w", kms.ErrUnavailable)
	}
	return k.KEK.Unwrap(ctx, w, aad)
}

func (k *switchKEK) Ping(context.Context) error {
	k.pings.Add(1)
	if k.down.Load() {
		return fmt.Errorf("test KMS switched off: %w", kms.ErrUnavailable)
	}
	return nil
}

func ring(t *testing.T, current kms.KEK, previous ...kms.KEK) *kms.Ring {
	t.Helper()
	r, err := kms.NewRing(current, previous...)
	require.NoError(t, err)
	return r
}

// startWithKEKs starts the app's own wiring on the database at dbURL with injected KEK
// rings: one replica of a deployment. stop shuts it down (also at cleanup); starting
// another on the same URL is a restart or a second replica with a cold DEK cache.
func startWithKEKs(t *testing.T, dbURL string, cred, sec *kms.Ring) (*harness, func()) {
	t.Helper()
	vars := map[string]string{
		"AUTHPIPE_DATABASE_URL":      dbURL,
		"AUTHPIPE_BOOTSTRAP_API_KEY": bootstrapKey,
		"AUTHPIPE_LOG_LEVEL":         "debug",
	}
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	logs := &syncBuffer{}
	a, err := app.New(context.Background(), cfg, app.WithLogOutput(logs), app.WithKEKs(cred, sec))
	require.NoError(t, err)
	require.NoError(t, a.Bootstrap(context.Background()))
	a.Server.SetReady(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Audit.Run(ctx); close(done) }()
	h := &harness{t: t, app: a, logs: logs}
	h.srv = httptest.NewServer(a.Server.Handler())
	var once sync.Once
	stop := func() {
		once.Do(func() {
			h.srv.Close()
			a.Audit.Stop(context.Background())
			cancel()
			<-done
			a.Close()
		})
	}
	t.Cleanup(stop)
	return h, stop
}

// countRows counts rows of a table (optionally WHERE cond).
func countRows(t *testing.T, h *harness, table, cond string, args ...any) int64 {
	t.Helper()
	var n int64
	q := h.app.Store.DB().Table(table)
	if cond != "" {
		q = q.Where(cond, args...)
	}
	require.NoError(t, q.Count(&n).Error)
	return n
}

// waitRotation polls GET /v1/keys until the rotation is no longer running.
func waitRotation(t *testing.T, h *harness, key string) resp {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := h.expect(h.do("GET", "/v1/keys", key, nil), 200, "")
		if r.Body["rotation"].(map[string]any)["state"] != "running" {
			return r
		}
		require.True(t, time.Now().Before(deadline), "rotation still running: %s", r.Raw)
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKeysRotateEndToEnd(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dbURL := storetest.URL(t, d)
			credOld, secOld := newSwitchKEK(t), newSwitchKEK(t)

			// Before: a deployment on the old KEKs with a few workspaces and credentials.
			h, stop := startWithKEKs(t, dbURL, ring(t, credOld), ring(t, secOld))
			writer := h.createKey("connections:write")
			reader := h.createKey("tokens:read")
			var conns []string
			for i := range 3 {
				c := h.expect(h.do("POST", "/v1/connections", writer, map[string]any{
					"provider": "stripe", "end_user_id": fmt.Sprintf("user-%d", i), "api_key": fmt.Sprintf("sk_live_rotation_%02d_abcdefghij", i),
				}), 201, "")
				conns = append(conns, c.Body["id"].(string))
				h.expect(h.do("POST", "/v1/workspaces", bootstrapKey, map[string]any{"name": fmt.Sprintf("tenant-%d", i)}), 201, "")
			}
			before := h.expect(h.do("GET", "/v1/keys", bootstrapKey, nil), 200, "")
			require.Equal(t, credOld.ID(), before.Body["kek_id"])
			require.Equal(t, secOld.ID(), before.Body["client_secret_kek_id"])
			require.Equal(t, "idle", before.Body["rotation"].(map[string]any)["state"])
			deks := before.Body["deks"].(map[string]any)
			oldCred, oldSec := deks[credOld.ID()].(float64), deks[secOld.ID()].(float64)
			require.GreaterOrEqual(t, oldCred, 4.0, "default workspace + 3 tenants")
			require.GreaterOrEqual(t, oldSec, 4.0)
			stop()

			// The operator sets new KEKs, keeping the old ones as previous, and restarts.
			credNew, secNew := newSwitchKEK(t), newSwitchKEK(t)
			h, stop = startWithKEKs(t, dbURL, ring(t, credNew, credOld), ring(t, secNew, secOld))
			h.expect(h.do("POST", "/v1/keys/rotate", reader, nil), 403, "forbidden")
			h.expect(h.do("GET", "/v1/keys", reader, nil), 403, "forbidden")
			h.expect(h.do("POST", "/v1/keys/rotate", "", nil), 401, "unauthorized")

			// While the old KEK is slow to answer, the rotation is running; a second
			// call starts nothing and reports the running state.
			credOld.hold.Lock()
			credOld.unwraps.Store(0)
			started := h.expect(h.do("POST", "/v1/keys/rotate", bootstrapKey, nil), 202, "")
			require.Equal(t, "running", started.Body["rotation"].(map[string]any)["state"], started.Raw)
			require.Equal(t, credNew.ID(), started.Body["kek_id"])
			second := h.expect(h.do("POST", "/v1/keys/rotate", bootstrapKey, nil), 202, "")
			require.Equal(t, "running", second.Body["rotation"].(map[string]any)["state"])
			require.Equal(t, "running", h.expect(h.do("GET", "/v1/keys", bootstrapKey, nil), 200, "").Body["rotation"].(map[string]any)["state"])
			credOld.hold.Unlock()
			after := waitRotation(t, h, bootstrapKey)
			require.EqualValues(t, oldCred, credOld.unwraps.Load(), "one rotation ran: each old DEK unwrapped once")
			rot := after.Body["rotation"].(map[string]any)
			require.Equal(t, "done", rot["state"], after.Raw)
			require.Equal(t, oldCred+oldSec, rot["done"])
			require.Equal(t, rot["done"], rot["total"])
			require.NotContains(t, rot, "error")
			require.Equal(t, map[string]any{credNew.ID(): oldCred, secNew.ID(): oldSec}, after.Body["deks"],
				"every DEK of both purposes under its new KEK")
			purposes := rot["purposes"].(map[string]any)
			require.Equal(t, "done", purposes["credentials"].(map[string]any)["state"])
			require.Equal(t, "done", purposes["client_secrets"].(map[string]any)["state"])

			// A second rotation is idempotent: done, nothing re-wrapped, no new events.
			events := countRows(t, h, "audit_events", "type = ?", "kek.rotated")
			require.EqualValues(t, oldCred+oldSec, events, "one kek.rotated per workspace and purpose")
			h.expect(h.do("POST", "/v1/keys/rotate", bootstrapKey, nil), 202, "")
			again := waitRotation(t, h, bootstrapKey)
			require.Equal(t, "done", again.Body["rotation"].(map[string]any)["state"])
			require.Equal(t, events, countRows(t, h, "audit_events", "type = ?", "kek.rotated"))

			// The workspace's own chain shows the rotation and still verifies.
			auditor := h.createKey("audit:read")
			evs := h.expect(h.do("GET", "/v1/audit?limit=1000", auditor, nil), 200, "")
			found := 0
			for _, e := range evs.Body["events"].([]any) {
				if e.(map[string]any)["type"] == "kek.rotated" {
					found++
				}
			}
			require.Positive(t, found, "the default workspace's credentials DEK was re-wrapped")
			require.Equal(t, true, h.expect(h.do("GET", "/v1/audit/verify", auditor, nil), 200, "").Body["ok"])
			stop()

			// The old KEKs leave the configuration (and the KMS): everything still opens.
			credOld.down.Store(true)
			secOld.down.Store(true)
			h, _ = startWithKEKs(t, dbURL, ring(t, credNew), ring(t, secNew))
			for i, id := range conns {
				tok := h.expect(h.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")
				require.Equal(t, fmt.Sprintf("sk_live_rotation_%02d_abcdefghij", i), tok.Body["api_key"])
			}
			h.expect(h.do("POST", "/v1/workspaces", bootstrapKey, map[string]any{"name": "after-rotation"}), 201, "")
		})
	}
}

// TestFailClosedWhenKMSIsDown: with the credentials KEK unreachable, a replica whose
// cache lacks the DEK answers 503 kms_unavailable (never a weaker fallback), /readyz is
// 503 while /healthz stays 200, creating a workspace writes nothing at all, and service
// resumes by itself when the KMS returns.
func TestFailClosedWhenKMSIsDown(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dbURL := storetest.URL(t, d)
			cred, sec := newSwitchKEK(t), newSwitchKEK(t)
			warm, _ := startWithKEKs(t, dbURL, ring(t, cred), ring(t, sec))
			writer := warm.createKey("connections:write")
			reader := warm.createKey("tokens:read")
			c := warm.expect(warm.do("POST", "/v1/connections", writer, map[string]any{
				"provider": "stripe", "end_user_id": "user-1", "api_key": "sk_live_failclosed_abcdefghijkl",
			}), 201, "")
			id := c.Body["id"].(string)
			warm.expect(warm.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")

			// A second replica starts with a cold DEK cache; then the KMS goes away.
			cold, _ := startWithKEKs(t, dbURL, ring(t, cred), ring(t, sec))
			cold.expect(cold.do("GET", "/v1/keys", bootstrapKey, nil), 200, "") // auth path warm
			cred.down.Store(true)

			cold.expect(cold.do("GET", "/v1/connections/"+id+"/token", reader, nil), 503, "kms_unavailable")
			ready := cold.expect(cold.do("GET", "/readyz", "", nil), 503, "")
			require.Equal(t, "unavailable", ready.Body["checks"].(map[string]any)["kms"])
			cold.expect(cold.do("GET", "/healthz", "", nil), 200, "")
			// The warm replica still serves the DEK it holds (the cache is the point of it).
			warm.expect(warm.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")

			// (token.read events of the warm replica may still be flushing: count the rest.)
			tables := map[string]string{"workspaces": "", "deks": "", "api_keys": "", "audit_events": "type <> 'token.read'"}
			counts := map[string]int64{}
			for tb, cond := range tables {
				counts[tb] = countRows(t, cold, tb, cond)
			}
			start := time.Now()
			cold.expect(cold.do("POST", "/v1/workspaces", bootstrapKey, map[string]any{"name": "during-outage"}), 503, "kms_unavailable")
			require.Less(t, time.Since(start), 5*time.Second, "fails fast")
			for tb, cond := range tables {
				require.Equal(t, counts[tb], countRows(t, cold, tb, cond), "nothing written to %s", tb)
			}
			require.Zero(t, countRows(t, cold, "workspaces", "name = ?", "during-outage"))

			// A rotation started during the outage stops, resumable, and says why.
			credNext := newSwitchKEK(t)
			rot, _ := startWithKEKs(t, dbURL, ring(t, credNext, cred), ring(t, sec))
			rot.expect(rot.do("POST", "/v1/keys/rotate", bootstrapKey, nil), 202, "")
			st := waitRotation(t, rot, bootstrapKey)
			rs := st.Body["rotation"].(map[string]any)
			require.Equal(t, "kms_unavailable", rs["error"], st.Raw)
			require.Equal(t, "idle", rs["state"])
			require.Equal(t, true, rs["interrupted"], "stopped before the end: the next run resumes it")
			credState := rs["purposes"].(map[string]any)["credentials"].(map[string]any)
			require.Equal(t, true, credState["interrupted"])
			var saved string
			require.NoError(t, rot.app.Store.DB().Raw("SELECT state FROM kek_rotations WHERE purpose = 'credentials'").Scan(&saved).Error)
			require.Equal(t, "running", saved, "saved as running, with its cursor")

			// The KMS returns: every replica recovers without a restart.
			cred.down.Store(false)
			tok := cold.expect(cold.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")
			require.Equal(t, "sk_live_failclosed_abcdefghijkl", tok.Body["api_key"])
			// /readyz asks the KMS at most once per 5 s: it sees the return within that.
			require.Eventually(t, func() bool { return cold.do("GET", "/readyz", "", nil).Status == 200 }, 7*time.Second, 100*time.Millisecond)
			cold.expect(cold.do("POST", "/v1/workspaces", bootstrapKey, map[string]any{"name": "after-outage"}), 201, "")
			rot.expect(rot.do("POST", "/v1/keys/rotate", bootstrapKey, nil), 202, "")
			st = waitRotation(t, rot, bootstrapKey)
			require.Equal(t, "done", st.Body["rotation"].(map[string]any)["state"], st.Raw)
			require.NotContains(t, st.Body["rotation"], "error")
		})
	}
}

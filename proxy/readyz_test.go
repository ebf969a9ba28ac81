package proxy_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// blackHole accepts TCP connections and never reads from or answers them: a database
// that is reachable and hangs.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// getReadyz fetches /readyz with Kubernetes' default probe timeout (1 s).
func getReadyz(t *testing.T, base string) (int, map[string]any) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	res, err := client.Get(base + "/readyz")
	require.NoError(t, err, "/readyz answers within 1 s (took %s)", time.Since(start))
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var body map[string]any
	require.NoError(t, json.Unmarshal(raw, &body), string(raw))
	return res.StatusCode, body
}

// TestReadyzWithBlackHoledDatabase: a database that accepts connections and never answers
// makes /readyz say 503 "database": "unavailable" within 1 s, on every call, while
// /healthz stays 200.
func TestReadyzWithBlackHoledDatabase(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{
		"AUTHPIPE_DATABASE_URL":          "postgres://postgres@" + blackHole(t) + "/authpipe?sslmode=disable",
		"AUTHPIPE_KEK_URI":               "local://" + filepath.Join(dir, "kek.key"),
		"AUTHPIPE_CLIENT_SECRET_KEK_URI": "local://" + filepath.Join(dir, "cs-kek.key"),
	}
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	a, err := app.New(context.Background(), cfg, app.WithLogOutput(io.Discard))
	require.NoError(t, err)
	t.Cleanup(a.Close)
	a.Server.SetReady(true)
	srv := httptest.NewServer(a.Server.Handler())
	t.Cleanup(srv.Close)

	deadline := time.Now().Add(5 * time.Second) // past the database check's own deadline
	for time.Now().Before(deadline) {
		status, body := getReadyz(t, srv.URL)
		require.Equal(t, http.StatusServiceUnavailable, status, body)
		checks := body["checks"].(map[string]any)
		require.Equal(t, "unavailable", checks["database"], body)
		require.Equal(t, "ok", checks["kms"], body)
		require.Equal(t, "none", body["cache_invalidation"], "no listener, no cache")
		res, err := (&http.Client{Timeout: time.Second}).Get(srv.URL + "/healthz")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode)
		_ = res.Body.Close()
		time.Sleep(200 * time.Millisecond)
	}
}

// TestReadyzAsksTheKMSAtMostOncePer5s: 200 /readyz calls (concurrent too) ask each KEK at
// most once per 5 s, and still report a KMS that goes down and comes back.
func TestReadyzAsksTheKMSAtMostOncePer5s(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			cred, sec := newSwitchKEK(t), newSwitchKEK(t)
			h, _ := startWithKEKs(t, storetest.URL(t, d), ring(t, cred), ring(t, sec))
			calls := func(k *switchKEK) int64 { return k.pings.Load() + k.unwraps.Load() }
			before := [2]int64{calls(cred), calls(sec)}
			start := time.Now()
			client := &http.Client{Timeout: time.Second}
			var wg sync.WaitGroup
			var notOK atomic.Int64
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 50 {
						res, err := client.Get(h.srv.URL + "/readyz")
						if err != nil {
							notOK.Add(1)
							continue
						}
						_ = res.Body.Close()
						if res.StatusCode != http.StatusOK {
							notOK.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			require.Zero(t, notOK.Load(), "every /readyz answered 200 within 1 s")
			allowed := 1 + int64(time.Since(start)/(5*time.Second))
			require.LessOrEqual(t, calls(cred)-before[0], allowed, "credentials KEK calls for 200 /readyz")
			require.LessOrEqual(t, calls(sec)-before[1], allowed, "client-secret KEK calls for 200 /readyz")

			// A KMS outage shows within one interval, and so does its end.
			cred.down.Store(true)
			require.Eventually(t, func() bool { s, _ := getReadyz(t, h.srv.URL); return s == http.StatusServiceUnavailable },
				7*time.Second, 100*time.Millisecond)
			_, body := getReadyz(t, h.srv.URL)
			require.Equal(t, "unavailable", body["checks"].(map[string]any)["kms"])
			cred.down.Store(false)
			require.Eventually(t, func() bool { s, _ := getReadyz(t, h.srv.URL); return s == http.StatusOK },
				7*time.Second, 100*time.Millisecond)
		})
	}
}

// /readyz says how the connection cache hears of other replicas' writes: by LISTEN on
// PostgreSQL, in-process on SQLite, and by its TTL behind a transaction-pooling PgBouncer
// without AUTHPIPE_DATABASE_LISTEN_URL (the PgBouncer pass of scripts/test.sh), which is
// no reason to be unready.
func TestReadyzSaysHowTheCacheIsInvalidated(t *testing.T) {
	want := map[string]string{"sqlite": "process", "postgres": "listen"}
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			h := newHarness(t, d, nil)
			require.Eventually(t, func() bool {
				status, body := getReadyz(t, h.srv.URL)
				return status == http.StatusOK && body["cache_invalidation"] == want[d]
			}, 10*time.Second, 20*time.Millisecond)
		})
	}
	t.Run("pgbouncer without a listen URL", func(t *testing.T) {
		if !storetest.ThroughPgBouncer() {
			t.Skip("runs in the PgBouncer pass of scripts/test.sh (" + storetest.PgBouncerEnv + ")")
		}
		h := newHarness(t, "postgres", map[string]string{"AUTHPIPE_DATABASE_LISTEN_URL": ""})
		require.Eventually(t, func() bool {
			status, body := getReadyz(t, h.srv.URL)
			return status == http.StatusOK && body["cache_invalidation"] == "ttl"
		}, 15*time.Second, 50*time.Millisecond)
		require.Contains(t, h.logs.String(), "AUTHPIPE_DATABASE_LISTEN_URL", "the log says what to set")
	})
}

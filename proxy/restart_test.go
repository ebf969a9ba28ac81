package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// refreshGate stands in front of the provider's token endpoint and can hold one refresh
// grant: the test learns that it arrived, stops the database, and only then lets the
// provider answer (and rotate the refresh token), so that the result meets a database
// that is down.
type refreshGate struct {
	srv     *httptest.Server
	armed   atomic.Bool
	arrived chan struct{}
	release chan struct{}
}

func newRefreshGate(t *testing.T, provider string) *refreshGate {
	t.Helper()
	target, err := url.Parse(provider)
	require.NoError(t, err)
	g := &refreshGate{arrived: make(chan struct{}), release: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(target)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" && g.armed.CompareAndSwap(true, false) {
			close(g.arrived)
			<-g.release
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// loadStats counts the answers of the load goroutines by kind and status.
type loadStats struct {
	mu     sync.Mutex
	counts map[string]int
	odd    []string // answers that are neither success nor 503
}

func (s *loadStats) add(kind string, status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[fmt.Sprintf("%s %d", kind, status)]++
	if status != http.StatusOK && status != http.StatusCreated && status != http.StatusServiceUnavailable && len(s.odd) < 20 {
		s.odd = append(s.odd, fmt.Sprintf("%s %d %s", kind, status, body))
	}
}

// TestPostgresRestartUnderLoad restarts PostgreSQL (a throwaway cluster) twice, with a fast
// and with an immediate shutdown, while token reads, connection writes and forced
// refreshes against the fosite provider run, and a refresh whose provider answer arrives
// while the database is down. It shows: nothing but 2xx and 503 answers throughout, the
// process survives, reads resume within seconds of the database returning, every
// connection acknowledged with 201 is there afterwards, and no refresh token is burnt:
// each OAuth connection's stored refresh token is the one the provider honours.
func TestPostgresRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	if storetest.ThroughPgBouncer() {
		t.Skip("runs once, in the main pass (its own cluster, no PgBouncer)")
	}
	cl := storetest.StartCluster(t, storetest.ClusterConfig{})
	dbURL := cl.URL("postgres", "sslmode=disable")
	f := newFlowEnv(t, store.Postgres, oauthtest.Options{AutoLogin: true}, map[string]string{
		"AUTHPIPE_DATABASE_URL":            dbURL,
		"AUTHPIPE_DATABASE_LISTEN_URL":     dbURL,
		"AUTHPIPE_FORCED_REFRESH_INTERVAL": "1ns", // no throttle: forced refreshes may follow within 1ms
		"AUTHPIPE_RATE_LIMIT_PER_KEY":      "off",
	})
	gate := newRefreshGate(t, f.as.URL)
	f.h.expect(f.h.do("PUT", "/v1/providers/fosite", bootstrapKey, map[string]any{
		"display_name": "Fosite", "auth_mode": "oauth2", "client_id": f.as.ClientID(), "client_secret": clientSecret,
		"scopes": []string{"read"}, "callback_urls": []string{f.callback}, "return_urls": []string{f.ret},
		"authorization_url": f.as.AuthorizationURL(), "token_url": gate.srv.URL + "/token", "revocation_url": f.as.RevocationURL(),
		"issuer": f.as.Issuer(), "token_auth_method": "client_secret_basic",
	}), 200, "")
	oauthConns := []string{f.connect("u-1"), f.connect("u-2"), f.connect("u-3")}
	gated := f.connect("u-gated")

	client := &http.Client{Timeout: 20 * time.Second}
	call := func(method, path string, body any) (int, string) {
		var rd io.Reader
		if body != nil {
			j, _ := json.Marshal(body)
			rd = bytes.NewReader(j)
		}
		req, _ := http.NewRequest(method, f.h.srv.URL+path, rd)
		req.Header.Set("Authorization", "Bearer "+f.key)
		if rd != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(raw)
	}

	// Connections written under load: id → api key, for every 201.
	var mu sync.Mutex
	written := map[string]string{}
	var apiConns []string
	for i := range 3 {
		key := fmt.Sprintf("sk_test_seed%014d", i)
		status, body := call("POST", "/v1/connections", map[string]any{"provider": "stripe", "end_user_id": "seed", "api_key": key})
		require.Equal(t, http.StatusCreated, status, body)
		var c struct{ ID string }
		require.NoError(t, json.Unmarshal([]byte(body), &c))
		written[c.ID] = key
		apiConns = append(apiConns, c.ID)
	}

	stats := &loadStats{counts: map[string]int{}}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	worker := func(fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				fn(i)
			}
		}()
	}
	reads := append(append([]string(nil), apiConns...), oauthConns...)
	for w := range 4 {
		worker(func(i int) {
			status, body := call("GET", "/v1/connections/"+reads[(w+i)%len(reads)]+"/token", nil)
			stats.add("read", status, body)
		})
	}
	for w := range 2 {
		worker(func(i int) {
			key := fmt.Sprintf("sk_test_w%d_%012d", w, i)
			status, body := call("POST", "/v1/connections", map[string]any{"provider": "stripe", "end_user_id": "load", "api_key": key})
			stats.add("write", status, body)
			if status == http.StatusCreated {
				var c struct{ ID string }
				if json.Unmarshal([]byte(body), &c) == nil {
					mu.Lock()
					written[c.ID] = key
					mu.Unlock()
				}
			}
			time.Sleep(5 * time.Millisecond)
		})
	}
	// One forced refresh at a time (fosite's memory store is not safe for concurrent
	// refreshes of one client under -race).
	worker(func(i int) {
		status, body := call("POST", "/v1/connections/"+oauthConns[i%len(oauthConns)]+"/refresh", nil)
		stats.add("refresh", status, body)
		time.Sleep(20 * time.Millisecond)
	})

	// resumed waits for the first successful read after the database is back.
	resumed := func(what string) time.Duration {
		start := time.Now()
		for time.Since(start) < 30*time.Second {
			if status, _ := call("GET", "/v1/connections/"+apiConns[0]+"/token", nil); status == http.StatusOK {
				t.Logf("%s: reads resumed %s after the database was back", what, time.Since(start).Round(time.Millisecond))
				return time.Since(start)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s: reads did not resume", what)
		return 0
	}

	time.Sleep(1500 * time.Millisecond)
	// 1. Fast shutdown, with a refresh whose provider answer comes while it is down.
	gate.armed.Store(true)
	gatedDone := make(chan string, 1)
	go func() {
		status, body := call("POST", "/v1/connections/"+gated+"/refresh", nil)
		gatedDone <- fmt.Sprintf("%d %s", status, body)
	}()
	select {
	case <-gate.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the gated refresh never reached the provider")
	}
	cl.Stop("fast")
	close(gate.release) // the provider rotates now; the database is down
	time.Sleep(2 * time.Second)
	cl.Start()
	require.Less(t, resumed("fast shutdown"), 10*time.Second)
	select {
	case res := <-gatedDone:
		t.Logf("the gated refresh answered %s", res[:min(len(res), 80)])
	case <-time.After(30 * time.Second):
		t.Fatal("the gated refresh never answered")
	}
	time.Sleep(1500 * time.Millisecond)

	// 2. Immediate shutdown: no checkpoint, crash recovery at the start.
	cl.Stop("immediate")
	time.Sleep(2 * time.Second)
	cl.Start()
	require.Less(t, resumed("immediate shutdown"), 10*time.Second)
	time.Sleep(1500 * time.Millisecond)
	stop()
	wg.Wait()

	stats.mu.Lock()
	t.Logf("answers under load: %v", stats.counts)
	require.Empty(t, stats.odd, "only 2xx and 503 while the database restarts")
	require.Positive(t, stats.counts["write 201"])
	require.Positive(t, stats.counts["read 200"])
	require.Positive(t, stats.counts["refresh 200"])
	stats.mu.Unlock()

	// Every acknowledged write is there, with its credential. Reads may still be refused
	// (503 audit_unavailable, fail closed) until the audit writer's next attempt succeeds:
	// its retries back off to at most 2 s, so allow a few seconds for that, no more.
	readUntilOK := func(id string) (int, string) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			status, body := call("GET", "/v1/connections/"+id+"/token", nil)
			if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
				return status, body
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for id, key := range written {
		status, body := readUntilOK(id)
		require.Equal(t, http.StatusOK, status, body)
		require.Contains(t, body, key)
	}
	// No refresh token burnt: each OAuth connection is active, and its stored refresh
	// token is the one the provider still honours (including the one whose rotation was
	// answered while the database was down), and a refresh through the proxy works.
	for _, id := range append(oauthConns, gated) {
		require.Equal(t, store.StatusActive, f.status(id))
		_, rt := f.storedTokens(id)
		require.True(t, f.as.RefreshActive(context.Background(), rt), "connection %s: the stored refresh token is live", id)
		status, body := call("POST", "/v1/connections/"+id+"/refresh", nil)
		require.Equal(t, http.StatusOK, status, body)
	}
	logs := f.h.logs.String()
	require.NotContains(t, logs, "panic")
	require.True(t, strings.Contains(logs, "retrying with the new tokens held"), "the gated refresh met the database down")
	f.noLeaks()
}

package refresher_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// BenchmarkRefreshSweep10k: 10,000 due connections on PostgreSQL, refreshed by one sweep
// against a local provider that answers after 50 ms. It reports refreshes per second and
// the ideal, workers ÷ latency. Run with -benchtime=1x (docs/BENCHMARKS.md).
func BenchmarkRefreshSweep10k(b *testing.B) {
	const n, workers, latency = 10_000, 64, 50 * time.Millisecond
	for range b.N {
		b.StopTimer()
		e := newBenchEnv(b)
		var calls atomic.Int64
		prov := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k := calls.Add(1)
			time.Sleep(latency)
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprintf(w, `{"access_token":"at-%d","refresh_token":"rt-%d","token_type":"bearer","expires_in":3600}`, k, k)
		}))
		e.setProvider(oauthflow.Provider{TokenURL: prov.URL + "/token"}, oauthflow.ClientCredentials{ClientID: "c", ClientSecret: vault.NewSecret("s")})
		seed(b, e, n)
		r, err := refresher.New(refresher.Config{Workers: workers, PerProvider: workers, Batch: 2 * workers},
			refresher.Deps{Store: e.store, Creds: e.creds, Providers: e.provs, HTTPClient: e.hc})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		st, err := r.Sweep(context.Background())
		elapsed := time.Since(start)
		b.StopTimer()
		prov.Close()
		if err != nil || st.Refreshed != n {
			b.Fatalf("sweep: %+v %v", st, err)
		}
		rate := float64(n) / elapsed.Seconds()
		ideal := float64(workers) / latency.Seconds()
		b.ReportMetric(rate, "refreshes/s")
		b.ReportMetric(ideal, "ideal/s")
		b.ReportMetric(rate/ideal, "of-ideal")
		b.ReportMetric(0, "ns/op")
	}
}

// newBenchEnv is newEnv on PostgreSQL for a benchmark.
func newBenchEnv(b *testing.B) *env {
	return newEnv(b, store.Postgres)
}

// seed inserts n due OAuth connections with sealed tokens in batches.
func seed(b *testing.B, e *env, n int) {
	ctx := context.Background()
	now := time.Now().UTC()
	exp := now.Add(time.Minute)
	conns := make([]store.Connection, 0, n)
	creds := make([]store.Credential, 0, n)
	for range n {
		id := ids.New(ids.Connection)
		conns = append(conns, store.Connection{ID: id, WorkspaceID: store.DefaultWorkspaceID, Provider: "bench", EndUserID: "u",
			AuthMode: "oauth2", Status: store.StatusActive, Scopes: store.Strings{}, ExpiresAt: &exp, NextRefreshAt: &exp,
			Version: 1, CreatedAt: now, UpdatedAt: now})
		at, err := e.creds.Seal(ctx, vault.Binding{WorkspaceID: store.DefaultWorkspaceID, OwnerID: id, Field: "access_token"}, vault.NewSecret("at"))
		if err != nil {
			b.Fatal(err)
		}
		rt, err := e.creds.Seal(ctx, vault.Binding{WorkspaceID: store.DefaultWorkspaceID, OwnerID: id, Field: "refresh_token"}, vault.NewSecret("rt"))
		if err != nil {
			b.Fatal(err)
		}
		creds = append(creds, store.Credential{ConnectionID: id, WorkspaceID: store.DefaultWorkspaceID, AccessToken: at, RefreshToken: rt, UpdatedAt: now})
	}
	if err := e.store.DB().CreateInBatches(conns, 500).Error; err != nil {
		b.Fatal(err)
	}
	if err := e.store.DB().CreateInBatches(creds, 500).Error; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkTokenEndpointVsBare measures GET /v1/connections/{id}/token for a cached,
// valid token on PostgreSQL against a bare net/http handler that writes a static JSON body
// of the same size, in the same run, with the same load generator: throughput, p99 and
// their ratio. Run with -benchtime=1x.
func BenchmarkTokenEndpointVsBare(b *testing.B) {
	const conc, dur, rounds = 16, 6 * time.Second, 6
	for range b.N {
		b.StopTimer()
		srvURL, id, keys, body := tokenServer(b)
		bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = w.Write(body)
		}))
		proxyReq := func(i int) *http.Request {
			req, _ := http.NewRequest("GET", srvURL+"/v1/connections/"+id+"/token", nil)
			req.Header.Set("Authorization", "Bearer "+keys[i%len(keys)])
			return req
		}
		bareReq := func(int) *http.Request {
			req, _ := http.NewRequest("GET", bare.URL+"/v1/connections/"+id+"/token", nil)
			return req
		}
		// Interleaved rounds, so that load from elsewhere on the machine falls on both alike.
		var proxyLat, bareLat []time.Duration
		var proxyTime, bareTime time.Duration
		b.StartTimer()
		for range rounds {
			l, d := load(b, conc, dur/rounds, proxyReq)
			proxyLat, proxyTime = append(proxyLat, l...), proxyTime+d
			l, d = load(b, conc, dur/rounds, bareReq)
			bareLat, bareTime = append(bareLat, l...), bareTime+d
		}
		proxyRPS, proxyP99 := stats(proxyLat, proxyTime)
		bareRPS, bareP99 := stats(bareLat, bareTime)
		b.StopTimer()
		bare.Close()
		b.ReportMetric(proxyRPS, "proxy-req/s")
		b.ReportMetric(float64(proxyP99.Microseconds()), "proxy-p99-µs")
		b.ReportMetric(bareRPS, "bare-req/s")
		b.ReportMetric(float64(bareP99.Microseconds()), "bare-p99-µs")
		b.ReportMetric(proxyRPS/bareRPS, "ratio")
		b.ReportMetric(0, "ns/op")
	}
}

// load runs conc keep-alive clients for dur and returns every request's latency and the
// time it took.
func load(b *testing.B, conc int, dur time.Duration, req func(i int) *http.Request) ([]time.Duration, time.Duration) {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var mu sync.Mutex
	var lat []time.Duration
	var bad atomic.Int64
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1<<12)
			for time.Now().Before(stop) {
				t0 := time.Now()
				res, err := c.Do(req(i))
				if err != nil {
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					bad.Add(1)
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		b.Fatalf("%d failed requests", bad.Load())
	}
	return lat, time.Since(start)
}

// stats is requests per second and the 99th percentile latency.
func stats(lat []time.Duration, elapsed time.Duration) (float64, time.Duration) {
	slices.Sort(lat)
	return float64(len(lat)) / elapsed.Seconds(), lat[len(lat)*99/100]
}

// tokenServer starts the real app on PostgreSQL with one valid OAuth connection and
// returns its URL, the connection id, API keys (tokens:read; several, so the per-key rate
// limit does not bind) and the token response's body.
func tokenServer(b *testing.B) (string, string, []string, []byte) {
	ctx := context.Background()
	dir := b.TempDir()
	vars := map[string]string{
		"AUTHPIPE_DATABASE_URL":          storetest.URL(b, store.Postgres),
		"AUTHPIPE_KEK_URI":               "local://" + filepath.Join(dir, "kek.key"),
		"AUTHPIPE_CLIENT_SECRET_KEK_URI": "local://" + filepath.Join(dir, "cs-kek.key"),
		"AUTHPIPE_LOG_LEVEL":             "error",
		"AUTHPIPE_REFRESH_SCHEDULE":      "@every 1h",
	}
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		b.Fatal(err)
	}
	a, err := app.New(ctx, cfg, app.WithLogOutput(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Bootstrap(ctx); err != nil {
		b.Fatal(err)
	}
	a.Server.SetReady(true)
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Audit.Run(actx); close(done) }()
	srv := httptest.NewServer(a.Server.Handler())
	b.Cleanup(func() { srv.Close(); a.Audit.Stop(context.Background()); cancel(); <-done; a.Close() })

	now := time.Now().UTC()
	exp := now.Add(time.Hour)
	next := exp.Add(-time.Minute)
	c := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: store.DefaultWorkspaceID, Provider: "github", EndUserID: "u",
		AuthMode: "oauth2", Status: store.StatusActive, Scopes: store.Strings{"repo"}, ExpiresAt: &exp, NextRefreshAt: &next,
		Version: 1, CreatedAt: now, UpdatedAt: now}
	at, err := a.Creds.Seal(ctx, vault.Binding{WorkspaceID: c.WorkspaceID, OwnerID: c.ID, Field: "access_token"},
		vault.NewSecret("gho_"+ids.Random(27)))
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Store.CreateConnection(ctx, c, store.Credential{ConnectionID: c.ID, WorkspaceID: c.WorkspaceID, AccessToken: at,
		TokenType: "Bearer", UpdatedAt: now}); err != nil {
		b.Fatal(err)
	}
	var keys []string
	for i := range 16 {
		k, err := a.Server.CreateAPIKey(ctx, store.DefaultWorkspaceID, fmt.Sprint("bench-", i), []string{"tokens:read"}, "bench")
		if err != nil {
			b.Fatal(err)
		}
		keys = append(keys, k.Key.Reveal())
	}
	req, _ := http.NewRequest("GET", srv.URL+"/v1/connections/"+c.ID+"/token", nil)
	req.Header.Set("Authorization", "Bearer "+keys[0])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		b.Fatalf("token: %d %s", res.StatusCode, body)
	}
	return srv.URL, c.ID, keys, body
}

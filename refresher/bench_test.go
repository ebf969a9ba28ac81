package refresher_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
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
	ao, ro := e.bindings()
	for range n {
		id := ids.New(ids.Connection)
		conns = append(conns, store.Connection{ID: id, WorkspaceID: store.DefaultWorkspaceID, Provider: "bench", EndUserID: "u",
			AuthMode: "oauth2", Status: store.StatusActive, Scopes: store.Strings{}, ExpiresAt: &exp, NextRefreshAt: &exp,
			Version: 1, CreatedAt: now, UpdatedAt: now})
		at, err := e.creds.Seal(ctx, vault.AccessTokenBinding(store.DefaultWorkspaceID, id, ao), vault.NewSecret("at"))
		if err != nil {
			b.Fatal(err)
		}
		rt, err := e.creds.Seal(ctx, vault.RefreshTokenBinding(store.DefaultWorkspaceID, id, ro), vault.NewSecret("rt"))
		if err != nil {
			b.Fatal(err)
		}
		creds = append(creds, store.Credential{ConnectionID: id, WorkspaceID: store.DefaultWorkspaceID, AccessToken: at, RefreshToken: rt, UpdatedAt: now,
			AccessOrigins: store.StoredOrigins(ao), RefreshOrigins: store.StoredOrigins(ro)})
	}
	if err := e.store.DB().CreateInBatches(conns, 500).Error; err != nil {
		b.Fatal(err)
	}
	if err := e.store.DB().CreateInBatches(creds, 500).Error; err != nil {
		b.Fatal(err)
	}
}

package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// BenchmarkForward is the load test of the forwarding proxy (docs/BENCHMARKS.md): many
// concurrent clients GET a small JSON document from a local upstream, once directly and
// once through /v1/proxy (the app's own wiring on SQLite: API-key check, connection read,
// credential open, audit event, header filtering, streaming). Compare the two req/s figures
// of the same run, per store:
//
//	go test ./proxy -run '^$' -bench BenchmarkForward -benchtime 5s -cpu 2
func BenchmarkForward(b *testing.B) {
	for _, d := range storetest.Dialects {
		b.Run(d, func(b *testing.B) { benchForward(b, d) })
	}
}

func benchForward(b *testing.B, dialect string) {
	doc := bytes.Repeat([]byte(`{"id":1,"name":"octocat","type":"User"},`), 6)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	defer up.Close()

	dir := b.TempDir()
	vars := map[string]string{
		"AUTHPIPE_DATABASE_URL":          storetest.URL(b, dialect),
		"AUTHPIPE_KEK_URI":               "local://" + filepath.Join(dir, "kek.key"),
		"AUTHPIPE_CLIENT_SECRET_KEK_URI": "local://" + filepath.Join(dir, "cs-kek.key"),
		"AUTHPIPE_BOOTSTRAP_API_KEY":     bootstrapKey,
		"AUTHPIPE_LOG_LEVEL":             "error",
		"AUTHPIPE_RATE_LIMIT_PER_KEY":    "off", // measure the proxy, not the limiter's refusals
	}
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		b.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, app.WithLogOutput(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	if err := a.Bootstrap(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Audit.Run(ctx); close(done) }()
	defer func() { a.Audit.Stop(context.Background()); cancel(); <-done }()
	srv := httptest.NewServer(a.Server.Handler())
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	call := func(method, url, key string, body any) map[string]any {
		var rd io.Reader
		if body != nil {
			j, _ := json.Marshal(body)
			rd = bytes.NewReader(j)
		}
		req, _ := http.NewRequest(method, url, rd)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		if res.StatusCode >= 300 {
			b.Fatalf("%s %s: %d %v", method, url, res.StatusCode, out)
		}
		return out
	}
	call("PUT", srv.URL+"/v1/providers/bench", bootstrapKey, map[string]any{
		"auth_mode": "api_key", "api_base_url": up.URL, "api_key_auth": "header", "api_key_header": "X-Api-Key"})
	conn := call("POST", srv.URL+"/v1/connections", bootstrapKey, map[string]any{
		"provider": "bench", "end_user_id": "u", "api_key": "sk_bench_0123456789abcdef"})
	reader := call("POST", srv.URL+"/v1/api-keys", bootstrapKey, map[string]any{"name": "r", "scopes": []string{"tokens:read"}})["key"].(string)

	run := func(b *testing.B, url string, auth bool) {
		b.SetParallelism(4) // 8 concurrent clients on 2 CPUs (within the outbound pool of 128 idle connections per host)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("GET", url, nil)
				if auth {
					req.Header.Set("Authorization", "Bearer "+reader)
				}
				res, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				if res.StatusCode != 200 || n != int64(len(doc)) {
					b.Errorf("status %d, %d bytes", res.StatusCode, n)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	}
	b.Run("direct", func(b *testing.B) { run(b, up.URL+"/repos/a/b", false) })
	b.Run("proxy", func(b *testing.B) { run(b, srv.URL+"/v1/proxy/"+conn["id"].(string)+"/repos/a/b", true) })
}

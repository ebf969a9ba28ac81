package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// forwardBench measures the forwarding proxy, ANY /v1/proxy/{connection_id}/{path}, on the
// real app (API-key check, connection read, credential open, audit event, header
// filtering, the SSRF-safe outbound client, streaming) in front of a local upstream that
// answers a small JSON document, against calling that upstream directly with the same
// keep-alive load generator, in interleaved rounds. The per-key rate limit is off: the
// figure is the proxy's cost, not the limiter's refusals.
func forwardBench(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("forward", flag.ContinueOnError)
	conc := fs.Int("c", 8, "concurrent keep-alive clients (the outbound pool keeps 128 idle connections per host)")
	dur := fs.Duration("duration", 6*time.Second, "total measuring time per side")
	rounds := fs.Int("rounds", 6, "interleaved rounds")
	size := fs.Int("size", 512, "upstream response body bytes")
	dbURL := fs.String("database-url", "", "a THROWAWAY database instead of a temporary SQLite file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *conc < 1 || *rounds < 1 || *dur <= 0 || *size < 0 {
		return errors.New("-c, -rounds, -duration and -size must be positive")
	}
	doc := bytes.Repeat([]byte("x"), *size)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	defer up.Close()

	dir, err := os.MkdirTemp("", "authpipe-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *dbURL == "" {
		*dbURL = "sqlite://" + filepath.Join(dir, "bench.db")
	}
	vars := map[string]string{
		"AUTHPIPE_DATABASE_URL":          *dbURL,
		"AUTHPIPE_KEK_URI":               "local://" + filepath.Join(dir, "kek.key"),
		"AUTHPIPE_CLIENT_SECRET_KEK_URI": "local://" + filepath.Join(dir, "cs-kek.key"),
		"AUTHPIPE_LOG_LEVEL":             "error",
		"AUTHPIPE_REFRESH_SCHEDULE":      "@every 1h",
		"AUTHPIPE_RATE_LIMIT_PER_KEY":    "off",
		"AUTHPIPE_OUTBOUND_ALLOW_CIDRS":  "127.0.0.0/8", // the local upstream
	}
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, app.WithLogOutput(io.Discard))
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.Bootstrap(ctx); err != nil {
		return err
	}
	a.Server.SetReady(true)
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Audit.Run(actx); close(done) }()
	defer func() { a.Audit.Stop(context.Background()); cancel(); <-done }()
	srv := httptest.NewServer(a.Server.Handler())
	defer srv.Close()

	k, err := a.Admin.CreateAPIKey(ctx, admin.KeyRequest{WorkspaceID: store.DefaultWorkspaceID, Name: "bench-admin",
		Scopes: []string{"admin"}, Actor: "bench"})
	if err != nil {
		return err
	}
	key := k.Key.Reveal()
	call := func(method, path string, body any) (map[string]any, error) {
		j, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, bytes.NewReader(j))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(res.Body).Decode(&m)
		if res.StatusCode >= 300 {
			return nil, fmt.Errorf("%s %s: %d %v", method, path, res.StatusCode, m["code"])
		}
		return m, nil
	}
	prov := "bench-" + fmt.Sprint(time.Now().UnixNano())
	if _, err := call("PUT", "/v1/providers/"+prov, map[string]any{"auth_mode": "api_key", "api_base_url": up.URL,
		"api_key_auth": "header", "api_key_header": "X-Api-Key"}); err != nil {
		return err
	}
	conn, err := call("POST", "/v1/connections", map[string]any{"provider": prov, "end_user_id": "bench",
		"api_key": vault.NewSecret("sk_bench_0123456789abcdef").Reveal()})
	if err != nil {
		return err
	}
	defer a.Store.DB().Exec(`DELETE FROM connections WHERE id = ?`, conn["id"])
	path := "/v1/proxy/" + conn["id"].(string) + "/repos/octocat/hello-world"
	proxyReq := func(int) *http.Request {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		return req
	}
	directReq := func(int) *http.Request {
		req, _ := http.NewRequest("GET", up.URL+"/repos/octocat/hello-world", nil)
		req.Header.Set("X-Api-Key", "sk_bench_0123456789abcdef")
		return req
	}

	fmt.Fprintf(out, "# %d clients, %d interleaved rounds, %s per side, body %d bytes, store: %s\n\n", *conc, *rounds, *dur, *size, a.Store.Dialect())
	var pl, dl []time.Duration
	var pd, dd time.Duration
	for range *rounds {
		l, d, err := hammer(*conc, *dur/time.Duration(*rounds), directReq)
		if err != nil {
			return err
		}
		dl, dd = append(dl, l...), dd+d
		if l, d, err = hammer(*conc, *dur/time.Duration(*rounds), proxyReq); err != nil {
			return err
		}
		pl, pd = append(pl, l...), pd+d
	}
	slices.Sort(pl)
	slices.Sort(dl)
	table(out, "req/s", []result{
		{name: "baseline: the upstream called directly", ops: int64(len(dl)), d: dd, note: "p99 " + dl[len(dl)*99/100].Round(time.Microsecond).String()},
		{name: "GET /v1/proxy/{id}/... to the same upstream", ops: int64(len(pl)), d: pd, note: "p99 " + pl[len(pl)*99/100].Round(time.Microsecond).String()},
	})
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// tokenBench measures GET /v1/connections/{id}/token for a cached, valid OAuth token on
// the real app (auth cache, one indexed read or the sealed-row cache, DEK cache, batched
// token.read audit) against a bare net/http handler writing a static JSON body of the same
// size, with the same keep-alive load generator, in interleaved rounds so that load from
// elsewhere on the machine falls on both alike. It prints throughput, p99 and the ratio.
func tokenBench(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	conc := fs.Int("c", 16, "concurrent keep-alive clients")
	dur := fs.Duration("duration", 6*time.Second, "total measuring time per side")
	rounds := fs.Int("rounds", 6, "interleaved rounds")
	dbURL := fs.String("database-url", "", "a THROWAWAY database instead of a temporary SQLite file")
	cpuProfile := fs.String("cpuprofile", "", "write CPU profiles (client and server, last round) of the token endpoint to this file and of the baseline to this file.bare")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *conc < 1 || *rounds < 1 || *dur <= 0 {
		return errors.New("-c, -rounds and -duration must be positive")
	}
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

	now := time.Now().UTC()
	ws := store.Workspace{ID: ids.New(ids.Workspace), Name: "bench-" + ids.Random(6), CreatedAt: now}
	if err := a.Store.DB().Create(&ws).Error; err != nil { // its own DEK, under this run's KEK
		return err
	}
	defer a.Store.DB().Exec(`DELETE FROM workspaces WHERE id = ?`, ws.ID)
	exp, next := now.Add(time.Hour), now.Add(59*time.Minute)
	c := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: ws.ID, Provider: "github", EndUserID: "bench",
		AuthMode: "oauth2", Status: store.StatusActive, Scopes: store.Strings{"repo"}, ExpiresAt: &exp, NextRefreshAt: &next,
		Version: 1, CreatedAt: now, UpdatedAt: now}
	at, err := a.Creds.Seal(ctx, vault.AccessTokenBinding(c.WorkspaceID, c.ID, vault.Origins{}), vault.NewSecret("gho_"+ids.Random(27)))
	if err != nil {
		return err
	}
	if err := a.Store.CreateConnection(ctx, c, store.Credential{ConnectionID: c.ID, WorkspaceID: c.WorkspaceID, AccessToken: at,
		TokenType: "Bearer", AccessOrigins: store.StoredOrigins(vault.Origins{}), UpdatedAt: now}); err != nil {
		return err
	}
	var keys []string // many, so that the per-key rate limit (1000/s, burst 2000) never binds; it still runs
	for i := range 64 {
		k, err := a.Admin.CreateAPIKey(ctx, admin.KeyRequest{WorkspaceID: ws.ID, Name: fmt.Sprint("bench-", i),
			Scopes: []string{"tokens:read"}, Actor: "bench"})
		if err != nil {
			return err
		}
		keys = append(keys, k.Key.Reveal())
	}
	path := "/v1/connections/" + c.ID + "/token"
	proxyReq := func(i int) *http.Request {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+keys[i%len(keys)])
		return req
	}
	res, err := http.DefaultClient.Do(proxyReq(0))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("token endpoint: %d", res.StatusCode)
	}
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(body)
	}))
	defer bare.Close()
	bareReq := func(int) *http.Request { req, _ := http.NewRequest("GET", bare.URL+path, nil); return req }

	fmt.Fprintf(out, "# %d clients, %d interleaved rounds, %s per side, body %d bytes, store: %s\n\n", *conc, *rounds, *dur, len(body), a.Store.Dialect())
	var pl, bl []time.Duration
	var pd, bd time.Duration
	bareProfile := "" // the baseline's rounds, next to the token endpoint's
	if *cpuProfile != "" {
		bareProfile = *cpuProfile + ".bare"
	}
	for range *rounds {
		stopProfile, err := startProfile(*cpuProfile)
		if err != nil {
			return err
		}
		l, d, err := hammer(*conc, *dur/time.Duration(*rounds), proxyReq)
		stopProfile()
		if err != nil {
			return err
		}
		pl, pd = append(pl, l...), pd+d
		if stopProfile, err = startProfile(bareProfile); err != nil {
			return err
		}
		l, d, err = hammer(*conc, *dur/time.Duration(*rounds), bareReq)
		stopProfile()
		if err != nil {
			return err
		}
		bl, bd = append(bl, l...), bd+d
	}
	slices.Sort(pl)
	slices.Sort(bl)
	table(out, "req/s", []result{
		{name: "baseline: bare net/http, static body", ops: int64(len(bl)), d: bd, note: "p99 " + bl[len(bl)*99/100].Round(time.Microsecond).String()},
		{name: "GET /v1/connections/{id}/token", ops: int64(len(pl)), d: pd, note: "p99 " + pl[len(pl)*99/100].Round(time.Microsecond).String()},
	})
	return nil
}

// startProfile starts a CPU profile into path (appending rounds is not possible with
// pprof, so the last round's profile is the one kept); an empty path profiles nothing.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// hammer runs conc keep-alive clients for d (req gets a request number, distinct across
// clients) and returns every latency and the time taken.
func hammer(conc int, d time.Duration, req func(int) *http.Request) ([]time.Duration, time.Duration, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var mu sync.Mutex
	var lat []time.Duration
	var bad, lastStatus atomic.Int64
	stop := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 4096)
			n := i // this client's request counter, spread over the keys
			for time.Now().Before(stop) {
				t0 := time.Now()
				res, err := c.Do(req(n))
				n += conc
				if err != nil {
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					bad.Add(1)
					lastStatus.Store(int64(res.StatusCode))
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
		return nil, 0, fmt.Errorf("%d failed requests (last status %d)", bad.Load(), lastStatus.Load())
	}
	return lat, time.Since(start), nil
}

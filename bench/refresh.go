package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/kms/backends"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// benchProviders resolves every provider key to one local provider.
type benchProviders struct{ p oauthflow.Provider }

func (b benchProviders) Provider(context.Context, string, string) (oauthflow.Provider, oauthflow.ClientCredentials, error) {
	return b.p, oauthflow.ClientCredentials{ClientID: "bench", ClientSecret: vault.NewSecret("bench-secret")}, nil
}

// refreshBench measures one refresher sweep over n due OAuth connections against a local
// provider that answers after -latency, in refreshes/s, against the ideal: workers ÷
// latency (every worker always waiting on the provider, nothing else costing anything).
func refreshBench(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("refresh", flag.ContinueOnError)
	n := fs.Int("n", 10_000, "due connections")
	workers := fs.Int("workers", 64, "sweep workers (and per-provider limit)")
	latency := fs.Duration("latency", 50*time.Millisecond, "provider latency")
	dbURL := fs.String("database-url", "", "a THROWAWAY database instead of a temporary SQLite file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *workers < 1 || *latency <= 0 {
		return errors.New("-n, -workers and -latency must be positive")
	}
	dir, err := os.MkdirTemp("", "authpipe-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, creds, closeAll, err := benchStore(ctx, dir, *dbURL)
	if err != nil {
		return err
	}
	defer closeAll()

	var calls atomic.Int64
	prov := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		k := calls.Add(1)
		time.Sleep(*latency)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"access_token":"at-%d","refresh_token":"rt-%d","token_type":"bearer","expires_in":3600}`, k, k)
	}))
	defer prov.Close()
	oc, err := outbound.New(outbound.Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		return err
	}
	p := oauthflow.Provider{Name: "bench", AuthMode: oauthflow.AuthModeOAuth2, TokenURL: prov.URL + "/token",
		TokenAuthMethod: oauthflow.ClientSecretBasic}
	r, err := refresher.New(refresher.Config{Workers: *workers, PerProvider: *workers, Batch: 2 * *workers},
		refresher.Deps{Store: st, Creds: creds, Providers: benchProviders{p}, HTTPClient: oc.TokenClient()})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "# %d due connections, %d workers, provider latency %s, store: %s\n\n", *n, *workers, *latency, st.Dialect())
	ws := store.Workspace{ID: ids.New(ids.Workspace), Name: "bench-" + ids.Random(6), CreatedAt: time.Now().UTC()}
	if err := st.DB().Create(&ws).Error; err != nil { // its own DEK, under this run's KEK
		return err
	}
	defer st.DB().Exec(`DELETE FROM workspaces WHERE id = ?`, ws.ID)
	if err := seedDue(ctx, st, creds, ws.ID, *n, p); err != nil {
		return err
	}
	start := time.Now()
	stats, err := r.Sweep(ctx)
	d := time.Since(start)
	if err != nil {
		return err
	}
	if stats.Refreshed != int64(*n) {
		return fmt.Errorf("refreshed %d of %d (%+v)", stats.Refreshed, *n, stats)
	}
	ideal := time.Duration(float64(*n) / (float64(*workers) / latency.Seconds()) * float64(time.Second))
	table(out, "refreshes/s", []result{
		{name: "ideal: workers ÷ latency", ops: int64(*n), d: ideal, note: "every worker always waiting on the provider"},
		{name: "refresher sweep", ops: stats.Refreshed, d: d, note: fmt.Sprintf("%d provider calls; claim, open, call, seal, fenced commit + audit", calls.Load())},
	})
	return nil
}

// benchStore opens and migrates the store (a temp SQLite file, or dbURL) with the default
// workspace, and a credentials keyring on a local KEK in dir.
func benchStore(ctx context.Context, dir, dbURL string) (*store.Store, *vault.Keyring, func(), error) {
	if dbURL == "" {
		dbURL = "sqlite://" + filepath.Join(dir, "bench.db")
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return nil, nil, nil, err
	}
	if _, err := st.Migrate(ctx); err != nil {
		_ = st.Close()
		return nil, nil, nil, err
	}
	if err := st.EnsureDefaultWorkspace(ctx); err != nil {
		_ = st.Close()
		return nil, nil, nil, err
	}
	ring, err := backends.OpenRing(ctx, "local://"+filepath.Join(dir, "kek.key"), nil, backends.Options{CreateLocal: true})
	if err != nil {
		_ = st.Close()
		return nil, nil, nil, err
	}
	kr, err := vault.NewKeyring(vault.PurposeCredentials, ring, st)
	if err != nil {
		_ = st.Close()
		_ = ring.Close()
		return nil, nil, nil, err
	}
	return st, kr, func() { _ = ring.Close(); _ = st.Close() }, nil
}

// seedDue inserts n OAuth connections due now, with sealed tokens, in batches.
func seedDue(ctx context.Context, st *store.Store, creds *vault.Keyring, wsID string, n int, p oauthflow.Provider) error {
	access, refresh := p.AccessTokenOrigins(), p.RefreshTokenOrigins()
	now := time.Now().UTC()
	exp := now.Add(time.Minute)
	conns := make([]store.Connection, 0, n)
	cs := make([]store.Credential, 0, n)
	for range n {
		id := ids.New(ids.Connection)
		conns = append(conns, store.Connection{ID: id, WorkspaceID: wsID, Provider: "bench-refresh", EndUserID: "u",
			AuthMode: "oauth2", Status: store.StatusActive, Scopes: store.Strings{}, ExpiresAt: &exp, NextRefreshAt: &exp,
			Version: 1, CreatedAt: now, UpdatedAt: now})
		at, err := creds.Seal(ctx, vault.AccessTokenBinding(wsID, id, access), vault.NewSecret("at"))
		if err != nil {
			return err
		}
		rt, err := creds.Seal(ctx, vault.RefreshTokenBinding(wsID, id, refresh), vault.NewSecret("rt"))
		if err != nil {
			return err
		}
		cs = append(cs, store.Credential{ConnectionID: id, WorkspaceID: wsID, AccessToken: at, RefreshToken: rt, UpdatedAt: now,
			AccessOrigins: store.StoredOrigins(access), RefreshOrigins: store.StoredOrigins(refresh)})
	}
	if err := st.DB().CreateInBatches(conns, 500).Error; err != nil {
		return err
	}
	return st.DB().CreateInBatches(cs, 500).Error
}

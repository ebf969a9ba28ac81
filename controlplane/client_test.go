package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/controlplane/cptest"
	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

const cpToken = "cp_test_token_0123456789"

// fakeApplier records applied documents; with fail set it refuses them as invalid.
type fakeApplier struct {
	mu      sync.Mutex
	applied []controlplane.ConfigDocument
	fail    bool
	err     error // returned instead of applying, when set
}

func (f *fakeApplier) ApplyControlPlaneConfig(_ context.Context, doc controlplane.ConfigDocument) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return fmt.Errorf("%w: provider x: token_url must be https", controlplane.ErrInvalidConfig)
	}
	if f.err != nil {
		return f.err
	}
	f.applied = append(f.applied, doc)
	return nil
}

func (f *fakeApplier) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.applied) }

func fast() []controlplane.Option {
	return []controlplane.Option{
		controlplane.WithIntervals(50*time.Millisecond, time.Hour, time.Hour),
		controlplane.WithBatching(100, 20*time.Millisecond),
		controlplane.WithBackoff(20*time.Millisecond, 100*time.Millisecond),
		controlplane.WithVersion("v1.0.0-test"),
	}
}

func newLink(t *testing.T, cp *cptest.Server, st *store.Store, opts ...controlplane.Option) *controlplane.Client {
	t.Helper()
	c, err := controlplane.New(controlplane.Config{URL: cp.URL, Token: vault.NewSecret(cpToken), PublicKey: cp.PublicKey()},
		app.ControlPlaneStore(st), cp.Client(), append(fast(), opts...)...)
	require.NoError(t, err)
	return c
}

func run(t *testing.T, c *controlplane.Client, a controlplane.ConfigApplier) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, a); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func connEvent(i int) controlplane.Event {
	return controlplane.Event{Type: controlplane.EventConnectionCreated, WorkspaceID: store.DefaultWorkspaceID,
		ConnectionID: fmt.Sprintf("conn_%d", i), Provider: "openai", Status: controlplane.StatusActive}
}

func newCP(t *testing.T) *cptest.Server {
	cp, err := cptest.NewServer(cpToken)
	require.NoError(t, err)
	t.Cleanup(cp.Close)
	return cp
}

func waitN(t *testing.T, cp *cptest.Server, typ controlplane.EventType, n int) []controlplane.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	evs, err := cp.WaitEvents(ctx, func(evs []controlplane.Event) bool { return countType(evs, typ) >= n })
	require.NoError(t, err, "waiting for %d %s events, have %d", n, typ, countType(evs, typ))
	return evs
}

func countType(evs []controlplane.Event, typ controlplane.EventType) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func TestNewValidatesConfig(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	tok := vault.NewSecret(cpToken)
	for name, cfg := range map[string]controlplane.Config{
		"query":     {URL: "https://cp.example.com/?x=1", Token: tok},
		"relative":  {URL: "cp.example.com", Token: tok},
		"userinfo":  {URL: "https://u:p@cp.example.com", Token: tok},
		"no token":  {URL: "https://cp.example.com"},
		"short key": {URL: "https://cp.example.com", Token: tok, PublicKey: make([]byte, 31)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := controlplane.New(cfg, app.ControlPlaneStore(st), http.DefaultClient)
			require.Error(t, err)
			require.NotContains(t, err.Error(), cpToken)
		})
	}
}

func TestPushSurvivesOutageAndRestart(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, st *store.Store) {
		cp := newCP(t)
		cp.SetDown(true)
		c := newLink(t, cp, st)
		stop := run(t, c, nil)
		for i := range 30 {
			c.Emit(context.Background(), connEvent(i))
		}
		// The control plane is down: events wait in the outbox, attempts are counted.
		require.Eventually(t, func() bool {
			rows, err := st.OutboxBatch(context.Background(), 100)
			return err == nil && len(rows) >= 30 && rows[0].Attempts >= 2
		}, 10*time.Second, 20*time.Millisecond)
		require.Empty(t, cp.Events())

		// Restart while down: the outbox is in the database.
		stop()
		for i := 30; i < 40; i++ { // emitted after Run stopped: never written, buffered only
			c.Emit(context.Background(), connEvent(i))
		}
		c2 := newLink(t, cp, st)
		run(t, c2, nil)
		time.Sleep(100 * time.Millisecond)
		cp.SetDown(false)
		evs := waitN(t, cp, controlplane.EventConnectionCreated, 30)
		seen := map[string]bool{}
		for _, e := range evs {
			seen[e.ConnectionID] = true
		}
		for i := range 30 {
			require.True(t, seen[fmt.Sprintf("conn_%d", i)], "conn_%d delivered", i)
		}
		require.Eventually(t, func() bool {
			n, err := st.OutboxLen(context.Background())
			return err == nil && n == 0
		}, 5*time.Second, 20*time.Millisecond, "delivered events are deleted")
		// Every request carried the token; none was a redirect follow or a query.
		for _, r := range cp.Requests() {
			require.Equal(t, "Bearer "+cpToken, r.Header.Get("Authorization"))
			require.Empty(t, r.Query)
		}
	})
}

func TestQueueDropsOldestWhenFull(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	cp := newCP(t)
	cp.SetDown(true)
	c := newLink(t, cp, st, controlplane.WithQueueLimit(10, 0))
	run(t, c, nil)
	for i := range 25 {
		c.Emit(context.Background(), connEvent(i))
		time.Sleep(2 * time.Millisecond)
	}
	// 25 events and the start-up heartbeat; the outbox keeps the newest 10.
	require.Eventually(t, func() bool { return c.Dropped() == 16 }, 5*time.Second, 10*time.Millisecond, "dropped %d", c.Dropped())
	rows, err := st.OutboxBatch(context.Background(), 100)
	require.NoError(t, err)
	require.Len(t, rows, 10)
	for i, row := range rows {
		var e controlplane.Event
		require.NoError(t, json.Unmarshal([]byte(row.Payload), &e))
		require.Equal(t, fmt.Sprintf("conn_%d", 15+i), e.ConnectionID, "the oldest were dropped")
	}
}

func TestEmitRefusesInvalidEventsAndNeverBlocks(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	cp := newCP(t)
	c := newLink(t, cp, st, controlplane.WithQueueLimit(0, 5))
	// Not running: the buffer (5) fills, the rest is dropped at once.
	start := time.Now()
	for i := range 1000 {
		c.Emit(context.Background(), connEvent(i))
	}
	require.Less(t, time.Since(start), time.Second)
	require.EqualValues(t, 995, c.Dropped())
	bad := connEvent(1)
	bad.ErrorCode = "invalid_grant: refresh token 1//0gSENTINEL revoked"
	c.Emit(context.Background(), bad)
	require.EqualValues(t, 1, c.Invalid())
}

func TestHeartbeatAndCounts(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	require.NoError(t, st.EnsureDefaultWorkspace(context.Background()))
	for i, status := range []string{store.StatusActive, store.StatusActive, store.StatusRevokePending} {
		c := store.Connection{ID: fmt.Sprintf("conn_%d", i), WorkspaceID: store.DefaultWorkspaceID, Provider: "openai",
			EndUserID: "u", AuthMode: "api_key", Status: status, Version: 1, CreatedAt: time.Now(), UpdatedAt: time.Now()}
		require.NoError(t, st.CreateConnection(context.Background(), c, store.Credential{ConnectionID: c.ID,
			WorkspaceID: c.WorkspaceID, APIKey: []byte{1}, UpdatedAt: time.Now()}))
	}
	cp := newCP(t)
	c := newLink(t, cp, st, controlplane.WithIntervals(time.Hour, 30*time.Millisecond, 30*time.Millisecond),
		controlplane.WithHealth(func(context.Context) controlplane.Health { return controlplane.HealthDegraded }))
	run(t, c, nil)
	waitN(t, cp, controlplane.EventHeartbeat, 2)
	evs := waitN(t, cp, controlplane.EventCounts, 1) // every event received so far
	for _, e := range evs {
		switch e.Type {
		case controlplane.EventHeartbeat:
			require.Equal(t, "v1.0.0-test", e.Version)
			require.Equal(t, controlplane.HealthDegraded, e.Health)
		case controlplane.EventCounts:
			require.ElementsMatch(t, []controlplane.Count{
				{WorkspaceID: store.DefaultWorkspaceID, Provider: "openai", Status: controlplane.StatusActive, N: 2},
				{WorkspaceID: store.DefaultWorkspaceID, Provider: "openai", Status: controlplane.StatusDisconnected, N: 1},
			}, e.Counts)
		}
	}
}

func doc(version int64) controlplane.ConfigDocument {
	return controlplane.ConfigDocument{Version: version, IssuedAt: time.Now().UTC(), Workspaces: []controlplane.WorkspaceConfig{{
		WorkspaceID: store.DefaultWorkspaceID,
		Providers: []controlplane.ProviderConfigDoc{{Key: "github", Template: "github", ClientID: "Iv1.public",
			CallbackURLs: []string{"https://app.example.com/v1/oauth/callback"}}},
	}}}
}

func rejections(t *testing.T, st *store.Store) []audit.Event {
	evs, err := st.ListAudit(context.Background(), store.DefaultWorkspaceID, "", 100)
	require.NoError(t, err)
	var out []audit.Event
	for _, e := range evs {
		if e.Type == controlplane.AuditConfigRefused {
			out = append(out, e)
		}
	}
	return out
}

func TestPullVerifiesAppliesAndRefuses(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		require.NoError(t, st.EnsureDefaultWorkspace(ctx))
		cp := newCP(t)
		c := newLink(t, cp, st)
		ap := &fakeApplier{}

		// Nothing served yet: a transient failure, nothing applied.
		_, err := c.Pull(ctx, ap)
		require.Error(t, err)

		require.NoError(t, cp.SetConfig(doc(2)))
		res, err := c.Pull(ctx, ap)
		require.NoError(t, err)
		require.Equal(t, controlplane.PullApplied, res)
		require.Equal(t, 1, ap.count())

		// Same ETag: 304.
		res, err = c.Pull(ctx, ap)
		require.NoError(t, err)
		require.Equal(t, controlplane.PullNotModified, res)
		require.Equal(t, "304", fmt.Sprint(cp.Requests()[len(cp.Requests())-1].Status))

		// A network attacker injects a provider under the old signature: refused, audited
		// once (not at every poll), nothing applied.
		cp.SetTamper(true)
		for range 3 {
			res, err = c.Pull(ctx, ap)
			require.NoError(t, err)
			require.Equal(t, controlplane.PullRejected, res)
		}
		require.Equal(t, 1, ap.count())
		rej := rejections(t, st)
		require.Len(t, rej, 1)
		require.Equal(t, string(controlplane.ErrorBadSignature), rej[0].ErrorCode)
		require.Equal(t, audit.Failure, rej[0].Outcome)
		require.Equal(t, controlplane.AuditActor, rej[0].Actor)
		cp.SetTamper(false)

		// A replayed older version, validly signed: refused.
		require.NoError(t, cp.SetConfig(doc(1)))
		res, err = c.Pull(ctx, ap)
		require.NoError(t, err)
		require.Equal(t, controlplane.PullRejected, res)
		require.Equal(t, string(controlplane.ErrorStaleConfigReplay), rejections(t, st)[1].ErrorCode)

		// Signed but not valid for the applier: refused, audited.
		ap.fail = true
		require.NoError(t, cp.SetConfig(doc(3)))
		res, err = c.Pull(ctx, ap)
		require.NoError(t, err)
		require.Equal(t, controlplane.PullRejected, res)
		require.Equal(t, string(controlplane.ErrorInvalidConfig), rejections(t, st)[2].ErrorCode)
		ap.fail = false

		// Signed with unknown fields or a URL with a query: refused before the applier.
		require.NoError(t, cp.SetSignedPayload([]byte(`{"version":4,"workspaces":[],"client_secret":"x"}`),
			cp.Sign([]byte(`{"version":4,"workspaces":[],"client_secret":"x"}`))))
		res, _ = c.Pull(ctx, ap)
		require.Equal(t, controlplane.PullRejected, res)
		bad := doc(5)
		bad.Workspaces[0].Providers[0].TokenURL = "https://evil.example/token?leak=1"
		require.NoError(t, cp.SetConfig(bad))
		res, _ = c.Pull(ctx, ap)
		require.Equal(t, controlplane.PullRejected, res)
		require.Equal(t, 1, ap.count())

		// The next good version applies; the applied version survives a new client.
		require.NoError(t, cp.SetConfig(doc(6)))
		res, err = c.Pull(ctx, ap)
		require.NoError(t, err)
		require.Equal(t, controlplane.PullApplied, res)
		c2 := newLink(t, cp, st)
		res, err = c2.Pull(ctx, ap)
		require.NoError(t, err)
		require.Equal(t, controlplane.PullNotModified, res, "version 6 is already applied")
		require.Equal(t, 2, ap.count())
	})
}

func TestPullRefusesAnotherKey(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	require.NoError(t, st.EnsureDefaultWorkspace(context.Background()))
	cp, other := newCP(t), newCP(t)
	require.NoError(t, cp.SetConfig(doc(1)))
	c, err := controlplane.New(controlplane.Config{URL: cp.URL, Token: vault.NewSecret(cpToken), PublicKey: other.PublicKey()},
		app.ControlPlaneStore(st), cp.Client(), fast()...)
	require.NoError(t, err)
	ap := &fakeApplier{}
	res, err := c.Pull(context.Background(), ap)
	require.NoError(t, err)
	require.Equal(t, controlplane.PullRejected, res)
	require.Zero(t, ap.count())
	require.Len(t, rejections(t, st), 1)
}

// TestPullRefusalCodes: each reason a verified document is refused has its own bounded
// code in the config_refused audit event and the config.refused event; nothing is applied.
func TestPullRefusalCodes(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		require.NoError(t, st.EnsureDefaultWorkspace(ctx))
		cp := newCP(t)
		c := newLink(t, cp, st)
		ap := &fakeApplier{}
		require.NoError(t, cp.SetConfig(doc(1)))
		res, err := c.Pull(ctx, ap)
		require.NoError(t, err)
		require.Equal(t, controlplane.PullApplied, res)

		now := time.Now().UTC()
		at := func(d controlplane.ConfigDocument, issued, expires time.Time) controlplane.ConfigDocument {
			d.IssuedAt, d.ExpiresAt = issued, expires
			return d
		}
		foreign := doc(2)
		foreign.Audience = "dep_" + strings.Repeat("b", 26)
		for _, tc := range []struct {
			name string
			doc  controlplane.ConfigDocument
			err  error
			code controlplane.ErrorCode
		}{
			{"foreign", foreign, nil, controlplane.ErrorForeignConfig},
			{"expired", at(doc(2), now.Add(-2*time.Hour), now.Add(-time.Second)), nil, controlplane.ErrorExpiredConfig},
			{"stale", at(doc(2), now.Add(-controlplane.MaxConfigAge-time.Minute), now.Add(time.Hour)), nil, controlplane.ErrorStaleConfig},
			{"future", at(doc(2), now.Add(controlplane.MaxConfigClockSkew+time.Minute), now.Add(time.Hour)), nil, controlplane.ErrorFutureConfig},
			{"origin change", doc(2), fmt.Errorf("%w: gh", controlplane.ErrOriginChange), controlplane.ErrorConfigOriginChange},
			{"client secret change", doc(3), fmt.Errorf("%w: gh", controlplane.ErrClientSecretChange), controlplane.ErrorConfigSecretChange},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ap.err = tc.err
				require.NoError(t, cp.SetConfig(tc.doc))
				res, err := c.Pull(ctx, ap)
				require.NoError(t, err)
				require.Equal(t, controlplane.PullRejected, res)
				rej := rejections(t, st)
				require.Equal(t, string(tc.code), rej[len(rej)-1].ErrorCode)
				require.Equal(t, 1, ap.count(), "nothing applied")
			})
		}
		ap.err = nil
		require.EqualValues(t, 6, c.Refused())
		stop := run(t, c, ap)
		evs := waitN(t, cp, controlplane.EventConfigRefused, 6)
		stop()
		codes := map[controlplane.ErrorCode]bool{}
		for _, e := range evs {
			if e.Type == controlplane.EventConfigRefused {
				require.NoError(t, e.Validate())
				require.Regexp(t, `^dep_[a-z2-7]{26}$`, e.DeploymentID)
				codes[e.ErrorCode] = true
			}
		}
		require.Len(t, codes, 6)
	})
}

func TestAuditConfigRefusedName(t *testing.T) {
	require.Equal(t, "controlplane.config_refused", controlplane.AuditConfigRefused, "API.md's name")
}

package app

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/metrics"
	"github.com/authpipe/authpipe-proxy/refresher"
)

// The kind is one bounded list everywhere it crosses: the metric's label, the control
// plane's enum; and every kind's control-plane event passes the boundary's validation.
func TestAnomalyKindsAgree(t *testing.T) {
	require.Equal(t, audit.AnomalyKinds, metrics.AnomalyKinds)
	require.Len(t, controlplane.AnomalyKinds, len(audit.AnomalyKinds))
	for i, k := range audit.AnomalyKinds {
		require.Equal(t, k, string(controlplane.AnomalyKinds[i]))
		f := audit.Anomaly{WorkspaceID: "ws_default", Kind: k, Count: 3, Window: time.Minute}
		switch k {
		case audit.AnomalyProviderFailures, audit.AnomalyProviderNeedsReauth:
			f.Provider = "google"
		case audit.AnomalyRefreshStorm:
			f.Provider, f.ConnectionID = "google", "conn_abc234"
		default:
			f.APIKeyID = "apk_abc234"
		}
		e := anomalyEvent(f)
		e.ID, e.At = "cpe_a", time.Now()
		require.NoError(t, e.Validate(), k)
	}
}

type nopAppender struct{}

func (nopAppender) AppendEvents(context.Context, ...audit.Event) error { return nil }

// The refresher's events reach the detection: failed attempts count per provider, a
// status change to needs_reauth counts as a transition, every attempt per connection.
func TestRefresherEventsReachTheDetection(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var found []audit.Anomaly
	b := audit.NewBatcher(nopAppender{}, audit.BatchOptions{Now: clock,
		Anomalies: &audit.AnomalyOptions{ProviderFailures: 3, ProviderNeedsReauth: 2, RefreshStorm: 100,
			OnAnomaly: func(a audit.Anomaly) { mu.Lock(); found = append(found, a); mu.Unlock() }}})
	sink := refresherEvents{audit: b} // standalone: no control plane
	for i := range 3 {
		conn := fmt.Sprintf("conn_%d", i)
		sink.Emit(context.Background(), refresher.Event{Type: refresher.EventFailed, WorkspaceID: "ws_a", ConnectionID: conn,
			Provider: "google", Status: "active", Code: "invalid_grant"})
		sink.Emit(context.Background(), refresher.Event{Type: refresher.EventStatusChanged, WorkspaceID: "ws_a", ConnectionID: conn,
			Provider: "google", Status: "needs_reauth", Code: "invalid_grant"})
	}
	sink.Emit(context.Background(), refresher.Event{Type: refresher.EventStatusChanged, WorkspaceID: "ws_a", ConnectionID: "conn_9",
		Provider: "github", Status: "error"}) // an API-key health check: no needs_reauth
	sink.Emit(context.Background(), refresher.Event{Type: refresher.EventRefreshed, WorkspaceID: "ws_a", ConnectionID: "conn_1",
		Provider: "google", Status: "active"})
	mu.Lock()
	now = now.Add(2 * time.Minute) // the window is over: the sealer's next tick closes it
	mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	go b.Run(ctx)
	defer func() { b.Stop(context.Background()); cancel() }()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(found) == 2 }, 10*time.Second, 20*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	kinds := map[string]int64{}
	for _, f := range found {
		require.Equal(t, "google", f.Provider)
		kinds[f.Kind] = f.Count
	}
	require.Equal(t, map[string]int64{audit.AnomalyProviderFailures: 3, audit.AnomalyProviderNeedsReauth: 3}, kinds)
}

package audit

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A provider whose refreshes start failing fires provider_refresh_failures once (then the
// cooldown holds); a connection refreshed far more often than a schedule would is one
// refresh_storm; normal refreshes fire nothing.
func TestAnomalyRefreshOutcomes(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var found []Anomaly
	b := NewBatcher(nopAppender{}, BatchOptions{Now: func() time.Time { return now },
		Anomalies: &AnomalyOptions{ProviderFailures: 20, ProviderNeedsReauth: 10, RefreshStorm: 8,
			OnAnomaly: func(a Anomaly) { found = append(found, a) }}})
	window := func(f func()) { f(); b.detect(nil); now = now.Add(61 * time.Second); b.detect(nil) }

	// Normal: 50 connections of two providers refreshed once or twice a window, a failure
	// now and then.
	for range 5 {
		window(func() {
			for c := range 50 {
				b.ObserveRefresh("ws_a", "google", fmt.Sprintf("conn_%d", c), RefreshSucceeded)
				b.ObserveRefresh("ws_a", "github", fmt.Sprintf("conn_g%d", c), RefreshSucceeded)
			}
			b.ObserveRefresh("ws_a", "google", "conn_1", RefreshSucceeded)
			b.ObserveRefresh("ws_a", "google", "conn_2", RefreshFailed)
			b.ObserveRefresh("ws_a", "github", "conn_g3", RefreshFailed)
			b.ObserveRefresh("ws_a", "github", "conn_g3", RefreshNeedsReauth)
		})
	}
	require.Empty(t, found, "normal refreshes are no finding")
	require.Empty(t, queued(b))

	// google starts failing: every connection's refresh fails, window after window; 12
	// connections become needs_reauth; one github connection is refreshed in a loop.
	for range 3 {
		window(func() {
			for c := range 50 {
				b.ObserveRefresh("ws_a", "google", fmt.Sprintf("conn_%d", c), RefreshFailed)
			}
			for c := range 12 {
				b.ObserveRefresh("ws_a", "google", fmt.Sprintf("conn_%d", c), RefreshNeedsReauth)
			}
			for range 9 {
				b.ObserveRefresh("ws_a", "github", "conn_g7", RefreshSucceeded)
			}
		})
	}
	evs := queued(b)
	require.Len(t, found, 3, "%+v", found)
	require.Len(t, evs, 3)
	byKind := map[string]Event{}
	for _, e := range evs {
		require.Equal(t, SecurityAnomaly, e.Type)
		byKind[e.ErrorCode] = e
	}
	require.JSONEq(t, `{"kind":"provider_refresh_failures","provider":"google","count":"50","baseline":"1","window":"1m0s"}`,
		byKind[AnomalyProviderFailures].Data)
	require.JSONEq(t, `{"kind":"provider_needs_reauth_burst","provider":"google","count":"12","baseline":"0","window":"1m0s"}`,
		byKind[AnomalyProviderNeedsReauth].Data)
	storm := byKind[AnomalyRefreshStorm]
	require.Equal(t, "conn_g7", storm.ConnectionID)
	require.JSONEq(t, `{"kind":"refresh_storm","provider":"github","count":"9","baseline":"0","window":"1m0s"}`, storm.Data)
}

// memClients is an in-memory ClientStore with the store's semantics.
type memClients struct {
	mu    sync.Mutex
	until map[string]time.Time
	seen  map[string]map[ClientSeen]bool
	calls int
}

func (m *memClients) LearnAPIKeyClients(_ context.Context, ws, key string, seen []ClientSeen, warmup time.Duration, _ int,
	now time.Time) ([]ClientSeen, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	k := ws + "/" + key
	if _, ok := m.until[k]; !ok {
		m.until[k] = now.Add(warmup)
		m.seen[k] = map[ClientSeen]bool{}
	}
	var fresh []ClientSeen
	for _, c := range seen {
		if !m.seen[k][c] && !now.Before(m.until[k]) {
			fresh = append(fresh, c)
		}
		m.seen[k][c] = true
	}
	return fresh, nil
}

// The client baseline: the warm-up learns; after it a new address, and a new certificate,
// fire once each, not per read; an IPv6 address counts by its /64; a known client asks
// the store nothing until its last_seen is due again.
func TestAnomalyNewClient(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &memClients{until: map[string]time.Time{}, seen: map[string]map[ClientSeen]bool{}}
	var found []Anomaly
	b := NewBatcher(nopAppender{}, BatchOptions{Now: func() time.Time { return now },
		Anomalies: &AnomalyOptions{Clients: st, ClientWarmup: 40 * time.Minute,
			ClientKey: func(context.Context) ([]byte, error) { return []byte("k"), nil },
			OnAnomaly: func(a Anomaly) { found = append(found, a) }}})
	known := map[anomalyKey]map[ClientSeen]time.Time{}
	read := func(addr string, cert byte) {
		o := clientObs{workspace: "ws_a", key: "apk_1", addr: netip.MustParseAddr(addr)}
		o.cert[0] = cert
		b.learn(context.Background(), known, []clientObs{o, o})
	}
	read("10.0.0.1", 0)
	read("2001:db8::1", 0)
	now = now.Add(20 * time.Minute)
	read("10.0.0.2", 0) // still learning
	require.Empty(t, found)
	now = now.Add(25 * time.Minute)
	calls := st.calls
	read("10.0.0.1", 0)
	read("2001:db8::2", 0) // same /64
	require.Equal(t, calls, st.calls, "known clients: no store call")
	require.Empty(t, found)

	read("203.0.113.9", 0)
	read("203.0.113.9", 0)
	require.Len(t, found, 1, "a new address fires once")
	require.Equal(t, Anomaly{WorkspaceID: "ws_a", Kind: AnomalyNewClientAddress, APIKeyID: "apk_1", Count: 1}, found[0])
	read("203.0.113.9", 7)
	read("203.0.113.9", 7)
	require.Len(t, found, 2, "a new certificate fires once")
	require.Equal(t, AnomalyNewClientCert, found[1].Kind)
	evs := queued(b)
	require.Len(t, evs, 2)
	require.JSONEq(t, `{"kind":"new_client_address","api_key_id":"apk_1","count":"1","baseline":"0"}`, evs[0].Data)
	require.NotContains(t, evs[0].Data+evs[1].Data, "203.0.113")
}

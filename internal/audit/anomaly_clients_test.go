package audit

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Reads are grouped by the client as the baseline counts it: IPv6 addresses of one /64
// (rotating privacy addresses, or an attacker cycling through its /64) are one group, not
// one each; another /64, or an IPv4 address, is a group of its own; a v4-mapped address is
// its IPv4 address.
func TestReadsGroupByClientBaseline(t *testing.T) {
	b := NewBatcher(nopAppender{}, BatchOptions{})
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	count := func(addr string) {
		k := ReadKey{WorkspaceID: "ws_a", Actor: "apk_1", ConnectionID: "conn_1", Type: TokenRead, Outcome: Success,
			Client: netip.MustParseAddr(addr)}
		require.NoError(t, b.Count(context.Background(), k, at))
	}
	for i := range 1000 {
		count(fmt.Sprintf("2001:db8:1:2:%x::%x", i, i+1))
	}
	count("2001:db8:1:3::1")
	count("192.0.2.1")
	count("::ffff:192.0.2.1")
	evs, obs := b.reads.sealAll(nil, nil)
	require.Len(t, evs, 3, "one group per /64 or IPv4 address")
	counts := map[string]int64{}
	for i, e := range evs {
		d, ok := ParseReadData(e.Data)
		require.True(t, ok)
		counts[obs[i].addr.String()] = d.Count
	}
	require.Equal(t, map[string]int64{"2001:db8:1:2::": 1000, "2001:db8:1:3::": 1, "192.0.2.1": 2}, counts)
}

// New-client findings are capped per key and kind per window: a key read from twelve new
// addresses in one window is five findings, then one with the count of the other seven
// when the window ends; the next window has its own cap. A window of clients the learner
// could not take, or a batch the store failed, is counted and logged, not lost silently.
func TestAnomalyNewClientCapped(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &memClients{until: map[string]time.Time{}, seen: map[string]map[ClientSeen]bool{}}
	var found []Anomaly
	b := NewBatcher(nopAppender{}, BatchOptions{Now: func() time.Time { return now },
		Anomalies: &AnomalyOptions{Clients: st, ClientWarmup: time.Minute,
			ClientKey: func(context.Context) ([]byte, error) { return []byte("k"), nil },
			OnAnomaly: func(a Anomaly) { found = append(found, a) }}})
	known := map[anomalyKey]map[ClientSeen]time.Time{}
	obs := func(from, n int) []clientObs {
		var out []clientObs
		for i := from; i < from+n; i++ {
			out = append(out, clientObs{workspace: "ws_a", key: "apk_1", addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})})
		}
		return out
	}
	b.learn(context.Background(), known, obs(0, 1)) // the warm-up starts
	now = now.Add(2 * time.Minute)
	b.learn(context.Background(), known, obs(1, 8))
	b.learn(context.Background(), known, obs(9, 4))
	require.Len(t, found, maxNewClientFindings)
	for _, a := range found {
		require.Equal(t, Anomaly{WorkspaceID: "ws_a", Kind: AnomalyNewClientAddress, APIKeyID: "apk_1", Count: 1}, a)
	}
	now = now.Add(61 * time.Second)
	b.rollClientWindow(now)
	require.Len(t, found, maxNewClientFindings+1)
	require.Equal(t, Anomaly{WorkspaceID: "ws_a", Kind: AnomalyNewClientAddress, APIKeyID: "apk_1", Count: 7,
		Window: time.Minute}, found[maxNewClientFindings])
	b.rollClientWindow(now.Add(2 * time.Minute)) // nothing more to report
	require.Len(t, found, maxNewClientFindings+1)
	b.learn(context.Background(), known, obs(13, 1)) // a new window: its own cap
	require.Len(t, found, maxNewClientFindings+2)
	require.Len(t, queued(b), maxNewClientFindings+2)

	require.Zero(t, b.ClientBaselineLost())
	for range cap(b.clientQ) + 1 {
		b.learnClients(obs(20, 1)) // nobody takes them: the last one is dropped
	}
	require.EqualValues(t, 1, b.ClientBaselineLost())
	b.detector.opts.Clients = failingClients{}
	b.learn(context.Background(), map[anomalyKey]map[ClientSeen]time.Time{}, obs(30, 1))
	require.EqualValues(t, 2, b.ClientBaselineLost())
}

type failingClients struct{}

func (failingClients) LearnAPIKeyClients(context.Context, string, string, []ClientSeen, time.Duration, int,
	time.Time) ([]ClientSeen, error) {
	return nil, errors.New("store: timeout")
}

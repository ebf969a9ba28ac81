package audit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type nopAppender struct{}

func (nopAppender) AppendEvents(context.Context, ...Event) error { return nil }

func readGroupEvent(ws, key, conn, outcome string, n int64) Event {
	return Event{WorkspaceID: ws, Type: TokenRead, Actor: key, ConnectionID: conn, Outcome: outcome,
		Data: fmt.Sprintf(`{"count":%d,"first_at":"2026-01-01T00:00:00Z","last_at":"2026-01-01T00:00:00Z"}`, n)}
}

// queued drains the writer's queue (the detector's findings).
func queued(b *Batcher) []Event {
	var out []Event
	for {
		select {
		case e := <-b.queue:
			out = append(out, e)
		default:
			return out
		}
	}
}

// A burst from one key fires exactly one security.anomaly per kind (then the cooldown
// holds), with counts and no credential; a key's usual traffic fires none.
func TestAnomalyBurstFiresOnce(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var found []Anomaly
	b := NewBatcher(nopAppender{}, BatchOptions{Now: func() time.Time { return now },
		Anomalies: &AnomalyOptions{KeyConnections: 100, RefusedReads: 50, OnAnomaly: func(a Anomaly) { found = append(found, a) }}})
	window := func(evs []Event) { b.detect(evs); now = now.Add(61 * time.Second) }

	// Baseline: the normal key and the burst key read 3 connections a window.
	for range 5 {
		var evs []Event
		for _, key := range []string{"apk_normal", "apk_burst"} {
			for c := range 3 {
				evs = append(evs, readGroupEvent("ws_a", key, fmt.Sprintf("conn_%d", c), Success, 7))
			}
		}
		window(evs)
	}
	b.detect(nil) // closes the last window
	require.Empty(t, queued(b), "usual traffic is no finding")

	// The burst: 300 connections and 80 refused reads in one window, then again.
	for range 3 {
		var evs []Event
		for c := range 300 {
			evs = append(evs, readGroupEvent("ws_a", "apk_burst", fmt.Sprintf("conn_%d", c), Success, 1))
		}
		evs = append(evs, readGroupEvent("ws_a", "apk_burst", "", Failure, 80))
		evs = append(evs, readGroupEvent("ws_a", "apk_normal", "conn_1", Success, 9))
		window(evs)
	}
	b.detect(nil)
	evs := queued(b)
	require.Len(t, evs, 2, "one finding per kind")
	require.Len(t, found, 2)
	kinds := map[string]Event{}
	for _, e := range evs {
		require.Equal(t, SecurityAnomaly, e.Type)
		require.Equal(t, "ws_a", e.WorkspaceID)
		kinds[e.ErrorCode] = e
	}
	require.JSONEq(t, `{"kind":"key_connections_burst","api_key_id":"apk_burst","count":"300","baseline":"3","window":"1m0s"}`,
		kinds[AnomalyKeyConnections].Data)
	require.JSONEq(t, `{"kind":"refused_read_burst","api_key_id":"apk_burst","count":"80","baseline":"0","window":"1m0s"}`,
		kinds[AnomalyRefusedReads].Data)
}

// The defaults are far above a test suite's traffic; detection is off without options.
func TestAnomalyDefaultsAndOff(t *testing.T) {
	d := newDetector(AnomalyOptions{})
	require.Equal(t, int64(1000), d.opts.KeyConnections)
	require.Equal(t, int64(500), d.opts.RefusedReads)
	require.Equal(t, time.Minute, d.opts.Window)
	require.Nil(t, NewBatcher(nopAppender{}, BatchOptions{}).detector)
}

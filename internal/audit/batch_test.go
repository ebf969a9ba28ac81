package audit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// fakeAppender records each AppendEvents call; fail makes it refuse.
type fakeAppender struct {
	mu      sync.Mutex
	batches [][]audit.Event
	fail    bool
}

func (f *fakeAppender) AppendEvents(_ context.Context, evs ...audit.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("database down")
	}
	f.batches = append(f.batches, append([]audit.Event(nil), evs...))
	return nil
}

func (f *fakeAppender) written() (events []string, batches int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.batches {
		for _, e := range b {
			events = append(events, e.ConnectionID)
		}
	}
	return events, len(f.batches)
}

func startBatcher(t *testing.T, app audit.Appender, opts audit.BatchOptions) *audit.Batcher {
	t.Helper()
	b := audit.NewBatcher(app, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { b.Stop(context.Background()); cancel(); <-done })
	return b
}

func event(i int) audit.Event {
	return audit.Event{WorkspaceID: "ws", Type: audit.TokenRead, ConnectionID: fmt.Sprint("conn_", i), Outcome: audit.Success}
}

func TestBatcherGroupsEventsInOrderWithinMaxDelay(t *testing.T) {
	app := &fakeAppender{}
	b := startBatcher(t, app, audit.BatchOptions{MaxDelay: 50 * time.Millisecond, MaxBatch: 512})
	var want []string
	start := time.Now()
	for i := range 300 {
		require.NoError(t, b.Enqueue(event(i)))
		want = append(want, fmt.Sprint("conn_", i))
	}
	require.Eventually(t, func() bool { got, _ := app.written(); return len(got) == 300 }, 2*time.Second, time.Millisecond)
	require.Less(t, time.Since(start), time.Second, "written about MaxDelay after the first event")
	got, batches := app.written()
	require.Equal(t, want, got, "every event, once, in order")
	require.Less(t, batches, 10, "grouped, not one write per event")
}

func TestBatcherWritesAFullBatchWithoutWaiting(t *testing.T) {
	app := &fakeAppender{}
	b := startBatcher(t, app, audit.BatchOptions{MaxDelay: time.Hour, MaxBatch: 10})
	for i := range 25 {
		require.NoError(t, b.Enqueue(event(i)))
	}
	require.Eventually(t, func() bool { got, _ := app.written(); return len(got) >= 20 }, 2*time.Second, time.Millisecond,
		"whole batches go at once, not after MaxDelay")
	_, batches := app.written()
	require.GreaterOrEqual(t, batches, 2)
}

func TestBatcherStopFlushesTheQueue(t *testing.T) {
	app := &fakeAppender{}
	b := audit.NewBatcher(app, audit.BatchOptions{MaxDelay: time.Hour, MaxBatch: 512})
	done := make(chan struct{})
	go func() { b.Run(context.Background()); close(done) }()
	for i := range 100 {
		require.NoError(t, b.Enqueue(event(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.Stop(ctx)
	<-done
	got, _ := app.written()
	require.Len(t, got, 100)
}

// A writer that cannot write makes Enqueue refuse after the grace period (fail closed),
// and accept again once it writes.
func TestBatcherFailsClosed(t *testing.T) {
	app := &fakeAppender{fail: true}
	b := startBatcher(t, app, audit.BatchOptions{MaxDelay: 5 * time.Millisecond, Grace: 200 * time.Millisecond})
	require.NoError(t, b.Enqueue(event(0)))
	require.Eventually(t, func() bool { return b.Enqueue(event(1)) != nil }, 3*time.Second, 5*time.Millisecond)
	require.ErrorIs(t, b.Enqueue(event(2)), audit.ErrUnavailable)
	app.mu.Lock()
	app.fail = false
	app.mu.Unlock()
	require.Eventually(t, b.Healthy, 5*time.Second, 5*time.Millisecond)
	got, _ := app.written()
	require.Equal(t, []string{"conn_0", "conn_1"}, got[:2], "nothing taken from the queue was dropped")
}

// A full queue refuses at once.
func TestBatcherBoundedQueue(t *testing.T) {
	b := audit.NewBatcher(&fakeAppender{}, audit.BatchOptions{QueueSize: 3}) // not running
	for i := range 3 {
		require.NoError(t, b.Enqueue(event(i)))
	}
	require.ErrorIs(t, b.Enqueue(event(3)), audit.ErrUnavailable)
}

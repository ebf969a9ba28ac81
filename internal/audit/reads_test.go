package audit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

func readKey(ws, key, conn string) audit.ReadKey {
	return audit.ReadKey{WorkspaceID: ws, Actor: key, ConnectionID: conn, Type: audit.TokenRead, Outcome: audit.Success}
}

// readEvents returns the written events with their parsed data, checking each one's shape.
func readEvents(t *testing.T, app *fakeAppender) (evs []audit.Event, data []audit.ReadData) {
	t.Helper()
	app.mu.Lock()
	defer app.mu.Unlock()
	for _, b := range app.batches {
		for _, e := range b {
			d, ok := audit.ParseReadData(e.Data)
			require.True(t, ok, "read data: %s", e.Data)
			evs, data = append(evs, e), append(data, d)
		}
	}
	return evs, data
}

// Reads of one key and connection in one window are one event with their count, first and
// last time; another key, connection or outcome is another event.
func TestCountAggregatesReads(t *testing.T) {
	app := &fakeAppender{}
	b := audit.NewBatcher(app, audit.BatchOptions{Window: time.Second})
	done := make(chan struct{})
	go func() { b.Run(context.Background()); close(done) }()
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 123456789, time.UTC)
	for i := range 10 {
		require.NoError(t, b.Count(t.Context(), readKey("ws", "apk_a", "conn_1"), t0.Add(time.Duration(i)*time.Millisecond)))
	}
	require.NoError(t, b.Count(t.Context(), readKey("ws", "apk_b", "conn_1"), t0))
	refused := readKey("ws", "apk_a", "conn_1")
	refused.Outcome, refused.ErrorCode = audit.Failure, "disconnected"
	require.NoError(t, b.Count(t.Context(), refused, t0))
	b.Stop(t.Context())
	<-done

	evs, data := readEvents(t, app)
	require.Len(t, evs, 3)
	got := map[string]audit.ReadData{}
	for i, e := range evs {
		require.Equal(t, audit.TokenRead, e.Type)
		got[e.Actor+" "+e.Outcome+" "+e.ErrorCode] = data[i]
	}
	a := got["apk_a success "]
	require.Equal(t, int64(10), a.Count)
	require.True(t, a.FirstAt.Equal(t0.Truncate(time.Microsecond)), "first_at %s", a.FirstAt)
	require.True(t, a.LastAt.Equal(t0.Add(9*time.Millisecond).Truncate(time.Microsecond)), "last_at %s", a.LastAt)
	require.Equal(t, int64(1), got["apk_b success "].Count)
	require.Equal(t, int64(1), got["apk_a failure disconnected"].Count)
	require.Equal(t, `{"count":1,"first_at":"2026-12-07T12:00:00.123456Z","last_at":"2026-12-07T12:00:00.123456Z"}`,
		evs[indexOf(evs, "apk_b")].Data, "the documented shape (docs/audit.md)")
}

func indexOf(evs []audit.Event, actor string) int {
	for i, e := range evs {
		if e.Actor == actor {
			return i
		}
	}
	return -1
}

// A window never spans more than Window: a read that finds its group older closes it.
func TestCountWindowIsBounded(t *testing.T) {
	app := &fakeAppender{}
	b := audit.NewBatcher(app, audit.BatchOptions{Window: time.Second})
	done := make(chan struct{})
	go func() { b.Run(context.Background()); close(done) }()
	t0 := time.Now()
	for _, d := range []time.Duration{0, 500 * time.Millisecond, 999 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2100 * time.Millisecond} {
		require.NoError(t, b.Count(t.Context(), readKey("ws", "apk", "conn"), t0.Add(d)))
	}
	b.Stop(t.Context())
	<-done
	_, data := readEvents(t, app)
	var counts []int64
	for _, d := range data {
		counts = append(counts, d.Count)
		require.LessOrEqual(t, d.LastAt.Sub(d.FirstAt), time.Second)
	}
	require.Equal(t, []int64{4, 2}, counts, "0–1 s (at most 1 s: inclusive), then 1.5–2.1 s")
}

// Counting a read of an open group allocates nothing.
func TestCountDoesNotAllocate(t *testing.T) {
	b := audit.NewBatcher(&fakeAppender{}, audit.BatchOptions{}) // not running: groups stay open
	k, at := readKey("ws", "apk", "conn"), time.Now()
	require.NoError(t, b.Count(t.Context(), k, at))
	ctx := t.Context()
	require.Zero(t, testing.AllocsPerRun(1000, func() { _ = b.Count(ctx, k, at) }))
}

// slowAppender takes delay per batch: a writer that is behind, not failing.
type slowAppender struct {
	fakeAppender
	delay time.Duration
}

func (s *slowAppender) AppendEvents(ctx context.Context, evs ...audit.Event) error {
	time.Sleep(s.delay)
	return s.fakeAppender.AppendEvents(ctx, evs...)
}

// A burst of 100,000 reads (10,000 under -race) of 300 key/connection pairs against a writer far slower than the
// events come (short windows, a tiny queue): every read is served — Count waits for room
// instead of refusing — and every read is counted in the written events.
func TestCountBurstAgainstSlowWriter(t *testing.T) {
	const window = 20 * time.Millisecond
	app := &slowAppender{delay: 2 * time.Millisecond}
	b := audit.NewBatcher(app, audit.BatchOptions{Window: window, QueueSize: 64, MaxBatch: 32,
		MaxDelay: time.Millisecond})
	done := make(chan struct{})
	go func() { b.Run(context.Background()); close(done) }()
	const reads, workers = readBurst, 16
	var refused atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < reads; i += workers {
				k := readKey(fmt.Sprint("ws_", i%3), fmt.Sprint("apk_", i%5), fmt.Sprint("conn_", i%100))
				if err := b.Count(context.Background(), k, time.Now()); err != nil {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.Stop(ctx)
	<-done
	require.Zero(t, refused.Load(), "no read refused while the log is healthy")
	evs, data := readEvents(t, &app.fakeAppender)
	var sum int64
	for _, d := range data {
		sum += d.Count
		require.LessOrEqual(t, d.LastAt.Sub(d.FirstAt), window)
	}
	require.Equal(t, int64(reads), sum, "every read counted")
	t.Logf("%d reads in %d events; reads waited for room %d times", reads, len(evs), b.ReadWaits())
}

// A log that cannot be written makes Count refuse after the grace period (fail closed);
// reads counted before are written once it recovers, none lost.
func TestCountFailsClosedAndLosesNothing(t *testing.T) {
	app := &slowAppender{}
	app.fail = true
	b := audit.NewBatcher(app, audit.BatchOptions{Window: 5 * time.Millisecond, MaxDelay: time.Millisecond,
		Grace: 100 * time.Millisecond, QueueSize: 4, MaxBatch: 2})
	done := make(chan struct{})
	go func() { b.Run(context.Background()); close(done) }()
	var served int64
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		err := b.Count(t.Context(), readKey("ws", "apk", fmt.Sprint("conn_", i%7)), time.Now())
		if errors.Is(err, audit.ErrUnavailable) {
			break
		}
		require.NoError(t, err)
		served++
		require.True(t, time.Now().Before(deadline), "never refused")
		time.Sleep(100 * time.Microsecond)
	}
	app.mu.Lock()
	app.fail = false
	app.mu.Unlock()
	require.Eventually(t, b.Healthy, 10*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.Stop(ctx)
	<-done
	_, data := readEvents(t, &app.fakeAppender)
	var sum int64
	for _, d := range data {
		sum += d.Count
	}
	require.Equal(t, served, sum, "every served read written after recovery")
}

package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// slowStore appends through the store after a pause: a writer that is behind.
type slowStore struct {
	*store.Store
	delay time.Duration
}

func (s slowStore) AppendEvents(ctx context.Context, evs ...audit.Event) error {
	time.Sleep(s.delay)
	return s.Store.AppendEvents(ctx, evs...)
}

// A burst of 100,000 token reads (10,000 under -race) from 16 clients, three workspaces,
// 120 key/connection pairs, 5 ms windows, against a writer that takes 5 ms more per batch
// and a small queue: no read is refused (Count waits for room), and the stored chains count
// every read — the sum of count is the number of reads — and verify.
func TestReadBurstIsCountedInTheChain(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		const window = 5 * time.Millisecond // short, so that a burst closes many windows
		b := audit.NewBatcher(slowStore{s, 5 * time.Millisecond}, audit.BatchOptions{Window: window,
			QueueSize: 64, MaxBatch: 64, MaxDelay: time.Millisecond})
		done := make(chan struct{})
		go func() { b.Run(context.Background()); close(done) }()
		wss := []string{"ws_burst_a", "ws_burst_b", "ws_burst_c"}
		const workers = 16
		var refused atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < readBurst; i += workers {
					k := audit.ReadKey{WorkspaceID: wss[i%3], Actor: fmt.Sprint("apk_", i%4), ConnectionID: fmt.Sprint("conn_", i%10),
						Type: audit.TokenRead, Outcome: audit.Success}
					if err := b.Count(context.Background(), k, time.Now()); err != nil {
						refused.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		served := time.Since(start)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.Stop(ctx)
		<-done
		require.Zero(t, refused.Load(), "no read refused while the log is healthy")

		var sum int64
		events := 0
		for _, ws := range wss {
			after := ""
			for {
				evs, err := s.ListAudit(context.Background(), ws, after, 1000)
				require.NoError(t, err)
				for _, e := range evs {
					d, ok := audit.ParseReadData(e.Data)
					require.True(t, ok, e.Data)
					require.LessOrEqual(t, d.LastAt.Sub(d.FirstAt), window, "%s %s %d %s", e.Data, e.ConnectionID, e.Seq, e.At)
					sum += d.Count
					events++
				}
				if len(evs) < 1000 {
					break
				}
				after = evs[len(evs)-1].ID
			}
			res, err := s.VerifyAudit(context.Background(), ws)
			require.NoError(t, err)
			require.True(t, res.OK, "first bad: %s", res.FirstBadEvent)
		}
		require.Equal(t, int64(readBurst), sum, "every read counted in the chain")
		t.Logf("%d reads served in %s, %d events; reads waited for room %d times", readBurst, served, events, b.ReadWaits())
	})
}

package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// RelayInboundWebhook is the replay store every replica shares: one digest per connection
// is relayed once while it lives, however many replicas race for it; an expired one may be
// relayed again and is swept; a refusal (no endpoint, replay) writes nothing.
func TestRelayInboundWebhookOnceAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			var now atomic.Int64
			now.Store(time.Unix(1_800_000_000, 0).UnixNano())
			clock := func() time.Time { return time.Unix(0, now.Load()) }
			url := storetest.URL(t, d)
			open := func() *store.Store {
				s, err := store.Open(ctx, url, store.WithClock(clock))
				require.NoError(t, err)
				t.Cleanup(func() { _ = s.Close() })
				return s
			}
			a := open()
			_, err := a.Migrate(ctx)
			require.NoError(t, err)
			b := open()
			ws := store.DefaultWorkspaceID
			delivery := func() store.WebhookDelivery {
				at := clock().UTC()
				return store.WebhookDelivery{ID: ids.New("whd"), WorkspaceID: ws, EventID: ids.New(ids.Event),
					Type: "provider.webhook", Payload: "{}", NextAttemptAt: &at, CreatedAt: at}
			}
			seen := store.InboundSeen{OwnerID: "conn_1", Digest: "d1", Expires: clock().Add(10 * time.Minute)}

			require.NoError(t, a.EnsureDefaultWorkspace(ctx))
			require.ErrorIs(t, a.RelayInboundWebhook(ctx, seen, delivery()), store.ErrNoWebhookEndpoint)
			require.NoError(t, a.PutWebhookEndpoint(ctx, store.WebhookEndpoint{WorkspaceID: ws, URL: "https://app.example.com/h",
				Secret: []byte("sealed"), CreatedAt: clock(), UpdatedAt: clock()}))

			var wg sync.WaitGroup
			var relayed, replays atomic.Int64
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := a
					if i%2 == 1 {
						s = b
					}
					switch err := s.RelayInboundWebhook(ctx, seen, delivery()); {
					case err == nil:
						relayed.Add(1)
					case assertReplay(t, err):
						replays.Add(1)
					}
				}()
			}
			wg.Wait()
			require.EqualValues(t, 1, relayed.Load())
			require.EqualValues(t, 7, replays.Load())
			ds, err := a.WebhookDeliveries(ctx, ws, 100)
			require.NoError(t, err)
			require.Len(t, ds, 1, "a refused replay queued nothing")

			require.NoError(t, b.RelayInboundWebhook(ctx, store.InboundSeen{OwnerID: "conn_2", Digest: "d1",
				Expires: clock().Add(time.Minute)}, delivery()), "digests are per connection")

			now.Add(int64(11 * time.Minute))
			require.NoError(t, b.RelayInboundWebhook(ctx, store.InboundSeen{OwnerID: "conn_1", Digest: "d1",
				Expires: clock().Add(10 * time.Minute)}, delivery()), "an expired record is taken over")
			n, err := a.DeleteExpiredInboundWebhookSeen(ctx, clock(), 1)
			require.NoError(t, err)
			require.EqualValues(t, 1, n, "conn_2's record expired")
		})
	}
}

func assertReplay(t *testing.T, err error) bool {
	t.Helper()
	require.ErrorIs(t, err, store.ErrReplay)
	return true
}

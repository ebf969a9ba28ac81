package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// cacheConn makes an active API-key connection whose sealed key is key.
func cacheConn(t *testing.T, s *store.Store, key byte) store.Connection {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, s.EnsureDefaultWorkspace(ctx))
	now := time.Now().UTC()
	c := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: store.DefaultWorkspaceID, Provider: "stripe",
		EndUserID: "u", AuthMode: "api_key", Status: store.StatusActive, Scopes: store.Strings{"a"}, Version: 1,
		CreatedAt: now, UpdatedAt: now}
	require.NoError(t, s.CreateConnection(ctx, c, store.Credential{ConnectionID: c.ID, WorkspaceID: c.WorkspaceID,
		APIKey: []byte{key}, UpdatedAt: now}, ev(c.WorkspaceID, audit.ConnectionCreated)))
	return c
}

func read(t *testing.T, s *store.Store, id string) store.ConnectionCredential {
	t.Helper()
	cc, err := s.ConnectionWithCredential(context.Background(), store.DefaultWorkspaceID, id)
	require.NoError(t, err)
	return cc
}

// withoutNotify runs fn in a transaction whose writes fire no trigger (so no NOTIFY): a
// write this replica's cache cannot hear about, as from a tool that bypasses the store.
func withoutNotify(t *testing.T, s *store.Store, fn func(tx *gorm.DB) error) {
	t.Helper()
	require.NoError(t, s.DB().Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`SET LOCAL session_replication_role = replica`).Error; err != nil {
			return err
		}
		return fn(tx)
	}))
}

// Every kind of write by this process is visible to the next read at once, whatever the
// cache holds: the store's own methods, model writes and raw SQL through DB().
func TestConnCacheSameProcessWritesAreVisibleAtOnce(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ws := store.DefaultWorkspaceID
		writes := []struct {
			name  string
			write func(t *testing.T, c store.Connection)
			check func(t *testing.T, cc store.ConnectionCredential)
		}{
			{"model update of the credential", func(t *testing.T, c store.Connection) {
				require.NoError(t, s.DB().Model(&store.Credential{}).Where("connection_id = ?", c.ID).Update("api_key", []byte{9}).Error)
			}, func(t *testing.T, cc store.ConnectionCredential) { require.Equal(t, []byte{9}, cc.Credential.APIKey) }},
			{"raw update of the connection", func(t *testing.T, c store.Connection) {
				require.NoError(t, s.DB().Exec(`UPDATE connections SET status = ? WHERE id = ?`, store.StatusNeedsReauth, c.ID).Error)
			}, func(t *testing.T, cc store.ConnectionCredential) {
				require.Equal(t, store.StatusNeedsReauth, cc.Status)
			}},
			{"raw delete of the credential in a transaction", func(t *testing.T, c store.Connection) {
				require.NoError(t, s.DB().Transaction(func(tx *gorm.DB) error {
					return tx.Exec(`DELETE FROM credentials WHERE connection_id = ?`, c.ID).Error
				}))
			}, func(t *testing.T, cc store.ConnectionCredential) { require.Nil(t, cc.Credential) }},
			{"Disconnect", func(t *testing.T, c store.Connection) {
				_, err := s.Disconnect(ctx, ws, c.ID, true, ev(ws, audit.ConnectionDisconnected))
				require.NoError(t, err)
			}, func(t *testing.T, cc store.ConnectionCredential) {
				require.Equal(t, store.StatusDisconnected, cc.Status)
				require.Nil(t, cc.Credential)
			}},
		}
		for _, w := range writes {
			t.Run(w.name, func(t *testing.T) {
				c := cacheConn(t, s, 1)
				require.Equal(t, []byte{1}, read(t, s, c.ID).Credential.APIKey) // fills the cache
				require.Equal(t, []byte{1}, read(t, s, c.ID).Credential.APIKey)
				w.write(t, c)
				w.check(t, read(t, s, c.ID))
			})
		}
	})
}

// twoReplicas opens two stores (two replicas) on one fresh PostgreSQL database and waits
// for their cache listeners.
func twoReplicas(t *testing.T) (*store.Store, *store.Store) {
	t.Helper()
	u := storetest.URL(t, store.Postgres)
	var out []*store.Store
	for range 2 {
		s, err := store.Open(context.Background(), u, store.WithListenURL(storetest.ListenURL(t, u)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		_, err = s.Migrate(context.Background())
		require.NoError(t, err)
		require.Eventually(t, s.ConnCacheOn, 5*time.Second, 10*time.Millisecond, "the listener connects")
		require.Equal(t, store.InvalidationListen, s.Invalidation())
		out = append(out, s)
	}
	return out[0], out[1]
}

// The cache does serve: a write that no notification announces (triggers off) stays
// invisible to another replica for at most the TTL. What it serves is a copy, and another
// workspace's lookup of the id is not served from it.
func TestConnCacheServesSealedRowsForAtMostTheTTL(t *testing.T) {
	a, b := twoReplicas(t)
	c := cacheConn(t, a, 1)
	time.Sleep(200 * time.Millisecond) // the creation's own notification, which evicts, has come
	cc := read(t, a, c.ID)
	cc.Credential.APIKey[0] = 7 // a caller's change does not reach the cache
	cc.Scopes[0] = "changed"
	written := time.Now()
	withoutNotify(t, b, func(tx *gorm.DB) error {
		return tx.Exec(`UPDATE credentials SET api_key = ? WHERE connection_id = ?`, []byte{2}, c.ID).Error
	})
	again := read(t, a, c.ID)
	require.Equal(t, []byte{1}, again.Credential.APIKey, "served from the cache, unchanged by the caller")
	require.Equal(t, store.Strings{"a"}, again.Scopes)
	_, err := a.ConnectionWithCredential(context.Background(), "ws_other", c.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Eventually(t, func() bool { return read(t, a, c.ID).Credential.APIKey[0] == 2 }, 2*time.Second, 10*time.Millisecond)
	require.Less(t, time.Since(written), 1500*time.Millisecond, "the TTL bounds a missed write")
}

// A write by another replica reaches this replica's cache by NOTIFY, well within the TTL;
// reconnect (a new credential), refresh, needs_reauth and disconnect alike.
func TestConnCacheOtherReplicaWritesArriveByNotify(t *testing.T) {
	a, b := twoReplicas(t)
	ctx := context.Background()
	ws := store.DefaultWorkspaceID
	cases := []struct {
		name  string
		write func(t *testing.T, c store.Connection)
		seen  func(cc store.ConnectionCredential) bool
	}{
		{"reconnect: the credential replaced", func(t *testing.T, c store.Connection) {
			require.NoError(t, b.DB().Transaction(func(tx *gorm.DB) error {
				if err := tx.Where("connection_id = ?", c.ID).Delete(&store.Credential{}).Error; err != nil {
					return err
				}
				return tx.Create(&store.Credential{ConnectionID: c.ID, WorkspaceID: ws, APIKey: []byte{3}, UpdatedAt: time.Now()}).Error
			}))
		}, func(cc store.ConnectionCredential) bool { return cc.Credential != nil && cc.Credential.APIKey[0] == 3 }},
		{"refresh: the credential updated", func(t *testing.T, c store.Connection) {
			require.NoError(t, b.DB().Model(&store.Credential{}).Where("connection_id = ?", c.ID).Update("api_key", []byte{4}).Error)
		}, func(cc store.ConnectionCredential) bool { return cc.Credential.APIKey[0] == 4 }},
		{"needs_reauth", func(t *testing.T, c store.Connection) {
			require.NoError(t, b.DB().Model(&store.Connection{}).Where("id = ?", c.ID).Update("status", store.StatusNeedsReauth).Error)
		}, func(cc store.ConnectionCredential) bool { return cc.Status == store.StatusNeedsReauth }},
		{"disconnect", func(t *testing.T, c store.Connection) {
			_, err := b.Disconnect(ctx, ws, c.ID, true, ev(ws, audit.ConnectionDisconnected))
			require.NoError(t, err)
		}, func(cc store.ConnectionCredential) bool {
			return cc.Status == store.StatusDisconnected && cc.Credential == nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cacheConn(t, a, 1)
			read(t, a, c.ID) // fills a's cache
			require.Equal(t, []byte{1}, read(t, a, c.ID).Credential.APIKey)
			written := time.Now()
			tc.write(t, c)
			require.True(t, tc.seen(read(t, b, c.ID)), "the writing replica sees it at once")
			require.Eventually(t, func() bool { return tc.seen(read(t, a, c.ID)) }, time.Second, 2*time.Millisecond)
			require.Less(t, time.Since(written), 500*time.Millisecond, "by notification, not the 1 s TTL")
		})
	}
}

// While the listener is down the cache is off: a write nobody announces is seen at once.
// A listener whose connection is killed reconnects and the cache comes back on, empty.
func TestConnCacheIsOffWhileTheListenerIsDown(t *testing.T) {
	a, b := twoReplicas(t)
	c := cacheConn(t, a, 1)
	read(t, a, c.ID)

	// Killed by the server: off, then back on after the reconnect, and empty. (Waiting for
	// ConnCacheOn alone could pass before the listener has noticed it was killed.)
	listens := a.ConnListens()
	require.NoError(t, b.DB().Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN authpipe_connections' AND pid <> pg_backend_pid()`).Error)
	require.Eventually(t, func() bool { return a.ConnListens() > listens && a.ConnCacheOn() }, 5*time.Second,
		10*time.Millisecond, "the listener reconnects")
	withoutNotify(t, b, func(tx *gorm.DB) error {
		return tx.Exec(`UPDATE credentials SET api_key = ? WHERE connection_id = ?`, []byte{2}, c.ID).Error
	})
	// (The cache was emptied when the listener came back; the row read now is the new one.)
	require.Equal(t, []byte{2}, read(t, a, c.ID).Credential.APIKey)

	a.StopConnListener()
	require.False(t, a.ConnCacheOn())
	read(t, a, c.ID)
	withoutNotify(t, b, func(tx *gorm.DB) error {
		return tx.Exec(`UPDATE credentials SET api_key = ? WHERE connection_id = ?`, []byte{5}, c.ID).Error
	})
	require.Equal(t, []byte{5}, read(t, a, c.ID).Credential.APIKey, "no cache without a listener")
}

// Reads racing writes in the same process never see an older row after the write returned.
func TestConnCacheReadsRacingWrites(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := cacheConn(t, s, 0)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					_, _ = s.ConnectionWithCredential(ctx, store.DefaultWorkspaceID, c.ID)
				}
			}()
		}
		for i := byte(1); i <= 30; i++ {
			require.NoError(t, s.DB().Transaction(func(tx *gorm.DB) error {
				return tx.Model(&store.Credential{}).Where("connection_id = ?", c.ID).Update("api_key", []byte{i}).Error
			}))
			require.Equal(t, []byte{i}, read(t, s, c.ID).Credential.APIKey)
		}
		close(stop)
		wg.Wait()
	})
}

// WithConnCacheTTL(0) turns the cache off: every read goes to the database.
func TestConnCacheCanBeTurnedOff(t *testing.T) {
	s := storetest.Open(t, store.SQLite, store.WithConnCacheTTL(0))
	require.False(t, s.ConnCacheOn())
	on := storetest.Open(t, store.SQLite)
	require.True(t, on.ConnCacheOn(), "SQLite (one process) caches from the start")
}

// Behind a transaction-pooling PgBouncer without a listen URL, LISTEN "succeeds" but no
// notification arrives: the listener's probe finds out, the cache falls back to its TTL
// (on, said by Invalidation), and another replica's write is seen within the TTL. With the
// direct listen URL, notifications arrive again.
func TestConnCacheBehindPgBouncer(t *testing.T) {
	if !storetest.ThroughPgBouncer() {
		t.Skip("runs in the PgBouncer pass of scripts/test.sh (" + storetest.PgBouncerEnv + ")")
	}
	u := storetest.URL(t, store.Postgres)
	pooled, err := store.Open(context.Background(), u)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pooled.Close() })
	_, err = pooled.Migrate(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return pooled.Invalidation() == store.InvalidationTTL }, 10*time.Second, 10*time.Millisecond)
	require.True(t, pooled.ConnCacheOn(), "the cache serves, bounded by its TTL")

	direct, err := store.Open(context.Background(), u, store.WithListenURL(storetest.ListenURL(t, u)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = direct.Close() })
	require.Eventually(t, func() bool { return direct.Invalidation() == store.InvalidationListen }, 10*time.Second, 10*time.Millisecond)

	c := cacheConn(t, pooled, 1)
	read(t, pooled, c.ID)
	read(t, direct, c.ID)
	written := time.Now()
	require.NoError(t, pooled.DB().Model(&store.Credential{}).Where("connection_id = ?", c.ID).Update("api_key", []byte{2}).Error)
	require.Eventually(t, func() bool { return read(t, direct, c.ID).Credential.APIKey[0] == 2 }, time.Second, 2*time.Millisecond)
	require.Less(t, time.Since(written), 500*time.Millisecond, "the direct listener hears the write")
	written = time.Now()
	require.NoError(t, direct.DB().Model(&store.Credential{}).Where("connection_id = ?", c.ID).Update("api_key", []byte{3}).Error)
	require.Eventually(t, func() bool { return read(t, pooled, c.ID).Credential.APIKey[0] == 3 }, 2*time.Second, 5*time.Millisecond)
	require.Less(t, time.Since(written), 1500*time.Millisecond, "the TTL bounds the pooled replica's staleness")
}

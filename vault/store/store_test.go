package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

func ev(ws, typ string) audit.Event {
	return audit.Event{WorkspaceID: ws, Type: typ, Actor: "test", Outcome: audit.Success}
}

func TestMigrateIsIdempotent(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		applied, err := s.Migrate(context.Background())
		require.NoError(t, err)
		require.Empty(t, applied, "a second migrate applies nothing")
	})
}

func TestWorkspaceCreateIsAtomic(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		require.NoError(t, s.EnsureDefaultWorkspace(ctx), "idempotent")

		ws := store.Workspace{ID: ids.New(ids.Workspace), Name: "acme", CreatedAt: time.Now()}
		dek := vault.DEKRecord{ID: ids.New(ids.DEK), WorkspaceID: ws.ID, Purpose: vault.PurposeCredentials,
			KEKID: "k", Wrapped: []byte{1}, CreatedAt: time.Now()}
		key := store.APIKey{ID: ids.New(ids.APIKey), WorkspaceID: ws.ID, Name: "first", Prefix: "abcd1234",
			Hash: []byte("h1"), HashKeyID: "pk", Scopes: store.Strings{"admin"}, CreatedAt: time.Now()}
		require.NoError(t, s.CreateWorkspace(ctx, ws, []vault.DEKRecord{dek}, key, ev(ws.ID, audit.WorkspaceCreated)))

		// Same name: nothing of the second attempt may remain.
		ws2 := store.Workspace{ID: ids.New(ids.Workspace), Name: "acme", CreatedAt: time.Now()}
		dek2 := dek
		dek2.ID, dek2.WorkspaceID = ids.New(ids.DEK), ws2.ID
		key2 := key
		key2.ID, key2.WorkspaceID, key2.Hash = ids.New(ids.APIKey), ws2.ID, []byte("h2")
		err := s.CreateWorkspace(ctx, ws2, []vault.DEKRecord{dek2}, key2, ev(ws2.ID, audit.WorkspaceCreated))
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = s.DEK(ctx, dek2.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.APIKeyByHash(ctx, []byte("h2"))
		require.ErrorIs(t, err, store.ErrNotFound)
		evs, err := s.ListAudit(ctx, ws2.ID, "", 10)
		require.NoError(t, err)
		require.Empty(t, evs)

		list, err := s.ListWorkspaces(ctx)
		require.NoError(t, err)
		require.Len(t, list, 2)
	})
}

func TestDEKs(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		_, err := s.ActiveDEK(ctx, "ws_x", vault.PurposeCredentials)
		require.ErrorIs(t, err, vault.ErrNotFound)
		rec := vault.DEKRecord{ID: ids.New(ids.DEK), WorkspaceID: "ws_x", Purpose: vault.PurposeCredentials,
			KEKID: "local:1", KEKVersion: "", Wrapped: []byte("wrapped"), CreatedAt: time.Now()}
		require.NoError(t, s.InsertDEK(ctx, rec))
		other := rec
		other.ID = ids.New(ids.DEK)
		require.ErrorIs(t, s.InsertDEK(ctx, other), vault.ErrDEKExists, "one DEK per workspace and purpose")
		cs := rec
		cs.ID, cs.Purpose = ids.New(ids.DEK), vault.PurposeClientSecrets
		require.NoError(t, s.InsertDEK(ctx, cs), "the other purpose has its own DEK")

		got, err := s.ActiveDEK(ctx, "ws_x", vault.PurposeCredentials)
		require.NoError(t, err)
		require.Equal(t, rec.ID, got.ID)
		require.Equal(t, []byte("wrapped"), got.Wrapped)
		byID, err := s.DEK(ctx, cs.ID)
		require.NoError(t, err)
		require.Equal(t, vault.PurposeClientSecrets, byID.Purpose)
	})
}

func TestAPIKeys(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		k := store.APIKey{ID: ids.New(ids.APIKey), WorkspaceID: store.DefaultWorkspaceID, Name: "b", Prefix: "p",
			Hash: []byte("hash"), HashKeyID: "pk", Scopes: store.Strings{"tokens:read"}, CreatedAt: time.Now()}
		ok, err := s.EnsureAPIKey(ctx, k, ev(k.WorkspaceID, audit.APIKeyCreated))
		require.NoError(t, err)
		require.True(t, ok)
		k2 := k
		k2.ID = ids.New(ids.APIKey)
		ok, err = s.EnsureAPIKey(ctx, k2, ev(k.WorkspaceID, audit.APIKeyCreated))
		require.NoError(t, err)
		require.False(t, ok, "same hash: already there")

		got, err := s.APIKeyByHash(ctx, []byte("hash"))
		require.NoError(t, err)
		require.Equal(t, k.ID, got.ID)
		require.Equal(t, store.Strings{"tokens:read"}, got.Scopes)

		require.ErrorIs(t, s.RevokeAPIKey(ctx, "ws_other", k.ID), store.ErrNotFound, "other workspace")
		require.NoError(t, s.RevokeAPIKey(ctx, k.WorkspaceID, k.ID, ev(k.WorkspaceID, audit.APIKeyRevoked)))
		require.ErrorIs(t, s.RevokeAPIKey(ctx, k.WorkspaceID, k.ID), store.ErrNotFound, "already revoked")
		got, err = s.APIKeyByHash(ctx, []byte("hash"))
		require.NoError(t, err)
		require.NotNil(t, got.RevokedAt)
		list, err := s.ListAPIKeys(ctx, k.WorkspaceID)
		require.NoError(t, err)
		require.Empty(t, list)
		evs, err := s.ListAudit(ctx, k.WorkspaceID, "", 10)
		require.NoError(t, err)
		require.Len(t, evs, 2)
	})
}

func TestConnectionsAndCredentials(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		ws := store.DefaultWorkspaceID
		now := time.Now().UTC()
		var made []string
		for i := 0; i < 5; i++ {
			c := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: ws, Provider: "stripe",
				EndUserID: fmt.Sprintf("user-%d", i%2), AuthMode: "api_key", Status: store.StatusActive,
				Scopes: store.Strings{}, CredentialPrefix: "sk_t", Version: 1, CreatedAt: now, UpdatedAt: now}
			cred := store.Credential{ConnectionID: c.ID, WorkspaceID: ws, APIKey: []byte{byte(i)}, UpdatedAt: now}
			require.NoError(t, s.CreateConnection(ctx, c, cred, ev(ws, audit.ConnectionCreated)))
			made = append(made, c.ID)
		}
		cc, err := s.ConnectionWithCredential(ctx, ws, made[3])
		require.NoError(t, err)
		require.Equal(t, made[3], cc.ID)
		require.NotNil(t, cc.Credential)
		require.Equal(t, []byte{3}, cc.Credential.APIKey)
		_, err = s.ConnectionWithCredential(ctx, "ws_other", made[3])
		require.ErrorIs(t, err, store.ErrNotFound, "another workspace's connection is not found")

		page, err := s.ListConnections(ctx, ws, store.ConnectionFilter{Limit: 2})
		require.NoError(t, err)
		require.Len(t, page, 2)
		rest, err := s.ListConnections(ctx, ws, store.ConnectionFilter{Limit: 10, After: page[1].ID})
		require.NoError(t, err)
		require.Len(t, rest, 3)
		u0, err := s.ListConnections(ctx, ws, store.ConnectionFilter{Limit: 10, EndUserID: "user-0"})
		require.NoError(t, err)
		require.Len(t, u0, 3)

		c, err := s.Disconnect(ctx, ws, made[3], true, ev(ws, audit.ConnectionDisconnected))
		require.NoError(t, err)
		require.Equal(t, store.StatusDisconnected, c.Status)
		cc, err = s.ConnectionWithCredential(ctx, ws, made[3])
		require.NoError(t, err)
		require.Nil(t, cc.Credential, "the ciphertext is gone")
		_, err = s.Disconnect(ctx, ws, "conn_missing", true)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestProviders(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		ws := store.DefaultWorkspaceID
		now := time.Now().UTC()
		p := store.Provider{ID: ids.New(ids.Provider), WorkspaceID: ws, Key: "gh", AuthMode: "oauth2",
			Config: `{"a":1}`, CreatedAt: now, UpdatedAt: now}
		got, err := s.PutProvider(ctx, p, &store.ProviderSecret{Sealed: []byte("s"), Prefix: "s3cr", UpdatedAt: now}, false,
			ev(ws, audit.ProviderUpdated))
		require.NoError(t, err)
		require.Equal(t, p.ID, got.ID)

		upd := p
		upd.ID, upd.Config = ids.New(ids.Provider), `{"a":2}`
		got, err = s.PutProvider(ctx, upd, nil, true, ev(ws, audit.ProviderUpdated))
		require.NoError(t, err)
		require.Equal(t, p.ID, got.ID, "an update keeps the id")
		sec, err := s.ProviderSecret(ctx, p.ID)
		require.NoError(t, err)
		require.Equal(t, []byte("s"), sec.Sealed, "keepSecret keeps it")

		_, err = s.PutProvider(ctx, upd, &store.ProviderSecret{Sealed: []byte("x")}, false)
		require.ErrorIs(t, err, store.ErrConflict, "a secret sealed for another id is refused")

		require.NoError(t, s.DeleteProvider(ctx, ws, "gh", ev(ws, audit.ProviderDeleted)))
		_, err = s.ProviderSecret(ctx, p.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, s.DeleteProvider(ctx, ws, "gh"), store.ErrNotFound)
	})
}

func TestAuditChainConcurrentAppends(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		const goroutines, each = 50, 20 // 1,000 appends
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					e := ev("ws_a", audit.TokenRead)
					e.ConnectionID = fmt.Sprintf("conn_%d_%d", g, i)
					if err := s.AppendEvents(ctx, e); err != nil {
						errs <- err
						return
					}
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		res, err := s.VerifyAudit(ctx, "ws_a")
		require.NoError(t, err)
		require.True(t, res.OK, "first bad: %s", res.FirstBadEvent)
		require.Equal(t, goroutines*each, res.Events)
	})
}

func TestAuditVerifyFindsTampering(t *testing.T) {
	seed := func(t *testing.T, s *store.Store) []audit.Event {
		ctx := context.Background()
		for i := 0; i < 10; i++ {
			require.NoError(t, s.AppendEvents(ctx, ev("ws_t", audit.TokenRefresh)))
		}
		evs, err := s.ListAudit(ctx, "ws_t", "", 100)
		require.NoError(t, err)
		require.Len(t, evs, 10)
		res, err := s.VerifyAudit(ctx, "ws_t")
		require.NoError(t, err)
		require.True(t, res.OK)
		return evs
	}
	cases := map[string]struct {
		tamper func(db execer, evs []audit.Event) error
		bad    func(evs []audit.Event) string
	}{
		"edited": {
			tamper: func(db execer, evs []audit.Event) error {
				return db.Exec("UPDATE audit_events SET outcome = 'failure' WHERE id = ?", evs[4].ID).Error
			},
			bad: func(evs []audit.Event) string { return evs[4].ID },
		},
		"reordered": {
			tamper: func(db execer, evs []audit.Event) error {
				if err := db.Exec("UPDATE audit_events SET seq = -1 WHERE id = ?", evs[3].ID).Error; err != nil {
					return err
				}
				if err := db.Exec("UPDATE audit_events SET seq = 4 WHERE id = ?", evs[4].ID).Error; err != nil {
					return err
				}
				return db.Exec("UPDATE audit_events SET seq = 5 WHERE id = ?", evs[3].ID).Error
			},
			bad: func(evs []audit.Event) string { return evs[4].ID },
		},
		"deleted middle": {
			tamper: func(db execer, evs []audit.Event) error {
				return db.Exec("DELETE FROM audit_events WHERE id = ?", evs[5].ID).Error
			},
			bad: func(evs []audit.Event) string { return evs[6].ID },
		},
		"deleted tail": {
			tamper: func(db execer, evs []audit.Event) error {
				return db.Exec("DELETE FROM audit_events WHERE id = ?", evs[9].ID).Error
			},
			bad: func(evs []audit.Event) string { return evs[9].ID },
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
				evs := seed(t, s)
				require.NoError(t, tc.tamper(s.DB(), evs))
				res, err := s.VerifyAudit(context.Background(), "ws_t")
				require.NoError(t, err)
				require.False(t, res.OK)
				require.Equal(t, tc.bad(evs), res.FirstBadEvent)
			})
		})
	}
}

type execer interface {
	Exec(sql string, values ...any) *gorm.DB
}

func TestUnavailableDatabase(t *testing.T) {
	s, err := store.Open(context.Background(), "postgres://postgres@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err, "opening does not need the server")
	start := time.Now()
	err = s.Ping(context.Background())
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = s.Connection(context.Background(), "ws", "conn")
	require.True(t, errors.Is(err, store.ErrUnavailable), "err = %v", err)
	require.Less(t, time.Since(start), 10*time.Second)
}

func TestAuditFailureFailsTheChange(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		ws := store.DefaultWorkspaceID
		// Break the audit table: every append now fails.
		require.NoError(t, s.DB().Exec("ALTER TABLE audit_events RENAME TO audit_events_gone").Error)
		now := time.Now().UTC()
		c := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: ws, Provider: "stripe", EndUserID: "u",
			AuthMode: "api_key", Status: store.StatusActive, Version: 1, CreatedAt: now, UpdatedAt: now}
		err := s.CreateConnection(ctx, c, store.Credential{ConnectionID: c.ID, WorkspaceID: ws, UpdatedAt: now},
			ev(ws, audit.ConnectionCreated))
		require.Error(t, err)
		_, err = s.Connection(ctx, ws, c.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "the change was rolled back with its event")
		k := store.APIKey{ID: ids.New(ids.APIKey), WorkspaceID: ws, Name: "n", Prefix: "p", Hash: []byte("x"),
			HashKeyID: "pk", Scopes: store.Strings{"admin"}, CreatedAt: now}
		require.Error(t, s.InsertAPIKey(ctx, k, ev(ws, audit.APIKeyCreated)))
		_, err = s.APIKeyByHash(ctx, []byte("x"))
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

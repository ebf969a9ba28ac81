package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

func TestOutboxIsBoundedAndDropsTheOldest(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var first []string
		for i := range 5 {
			first = append(first, fmt.Sprintf(`{"n":%d}`, i))
		}
		dropped, err := s.EnqueueOutbox(ctx, first, 8)
		require.NoError(t, err)
		require.Zero(t, dropped)
		dropped, err = s.EnqueueOutbox(ctx, []string{`{"n":5}`, `{"n":6}`, `{"n":7}`, `{"n":8}`, `{"n":9}`}, 8)
		require.NoError(t, err)
		require.EqualValues(t, 2, dropped)
		n, err := s.OutboxLen(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 8, n)

		batch, err := s.OutboxBatch(ctx, 3)
		require.NoError(t, err)
		require.Len(t, batch, 3)
		require.Equal(t, []string{`{"n":2}`, `{"n":3}`, `{"n":4}`}, []string{batch[0].Payload, batch[1].Payload, batch[2].Payload},
			"oldest first, the two oldest dropped")

		require.NoError(t, s.MarkOutboxAttempt(ctx, []int64{batch[0].ID, batch[1].ID}))
		require.NoError(t, s.DeleteOutbox(ctx, []int64{batch[2].ID}))
		again, err := s.OutboxBatch(ctx, 100)
		require.NoError(t, err)
		require.Len(t, again, 7)
		require.Equal(t, 1, again[0].Attempts)
		require.Equal(t, 1, again[1].Attempts)
		require.Equal(t, 0, again[2].Attempts)
		require.Equal(t, `{"n":5}`, again[2].Payload)

		_, err = s.EnqueueOutbox(ctx, []string{"{}"}, 0)
		require.Error(t, err)
	})
}

func TestControlPlaneState(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		_, err := s.ControlPlaneState(ctx, "config_version")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, s.SetControlPlaneState(ctx, "config_version", "3"))
		require.NoError(t, s.SetControlPlaneState(ctx, "config_version", "4"))
		v, err := s.ControlPlaneState(ctx, "config_version")
		require.NoError(t, err)
		require.Equal(t, "4", v)
	})
}

func TestConnectionCounts(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		mk := func(provider, status string) {
			c := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: store.DefaultWorkspaceID, Provider: provider,
				EndUserID: "u", AuthMode: "api_key", Status: status, Version: 1, CreatedAt: time.Now(), UpdatedAt: time.Now()}
			require.NoError(t, s.CreateConnection(ctx, c, store.Credential{ConnectionID: c.ID, WorkspaceID: c.WorkspaceID,
				APIKey: []byte{1}, UpdatedAt: time.Now()}))
		}
		mk("openai", store.StatusActive)
		mk("openai", store.StatusActive)
		mk("openai", store.StatusNeedsReauth)
		mk("stripe", store.StatusActive)
		got, err := s.ConnectionCounts(ctx)
		require.NoError(t, err)
		require.Equal(t, []store.ConnectionCount{
			{WorkspaceID: store.DefaultWorkspaceID, Provider: "openai", Status: store.StatusActive, N: 2},
			{WorkspaceID: store.DefaultWorkspaceID, Provider: "openai", Status: store.StatusNeedsReauth, N: 1},
			{WorkspaceID: store.DefaultWorkspaceID, Provider: "stripe", Status: store.StatusActive, N: 1},
		}, got)
	})
}

func TestPutProvidersIsAtomicAndKeepsSecrets(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		now := time.Now().UTC()
		gh := store.Provider{ID: ids.New(ids.Provider), WorkspaceID: store.DefaultWorkspaceID, Key: "github", AuthMode: "oauth2",
			Config: `{"v":1}`, CreatedAt: now, UpdatedAt: now}
		saved, err := s.PutProvider(ctx, gh, &store.ProviderSecret{Sealed: []byte("sealed"), Prefix: "abcd", UpdatedAt: now}, true)
		require.NoError(t, err)

		// A batch whose last row fails (unknown workspace: foreign key) leaves nothing.
		upd := gh
		upd.ID, upd.Config = ids.New(ids.Provider), `{"v":2}`
		slack := store.Provider{ID: ids.New(ids.Provider), WorkspaceID: store.DefaultWorkspaceID, Key: "slack", AuthMode: "oauth2",
			Config: `{}`, CreatedAt: now, UpdatedAt: now}
		bad := store.Provider{ID: ids.New(ids.Provider), WorkspaceID: "ws_missing", Key: "x", AuthMode: "oauth2", Config: `{}`,
			CreatedAt: now, UpdatedAt: now}
		_, err = s.PutProviders(ctx, []store.Provider{upd, slack, bad}, nil,
			audit.Event{WorkspaceID: store.DefaultWorkspaceID, Type: audit.ProviderUpdated, Actor: "controlplane", Outcome: audit.Success})
		require.Error(t, err)
		got, err := s.Provider(ctx, store.DefaultWorkspaceID, "github")
		require.NoError(t, err)
		require.Equal(t, `{"v":1}`, got.Config)
		_, err = s.Provider(ctx, store.DefaultWorkspaceID, "slack")
		require.ErrorIs(t, err, store.ErrNotFound)
		evs, err := s.ListAudit(ctx, store.DefaultWorkspaceID, "", 10)
		require.NoError(t, err)
		require.Empty(t, evs)

		out, err := s.PutProviders(ctx, []store.Provider{upd, slack}, nil,
			audit.Event{WorkspaceID: store.DefaultWorkspaceID, Type: audit.ProviderUpdated, Actor: "controlplane", Outcome: audit.Success})
		require.NoError(t, err)
		require.Equal(t, saved.ID, out[0].ID, "a replaced provider keeps its id")
		got, err = s.Provider(ctx, store.DefaultWorkspaceID, "github")
		require.NoError(t, err)
		require.Equal(t, `{"v":2}`, got.Config)
		sec, err := s.ProviderSecret(ctx, saved.ID)
		require.NoError(t, err)
		require.Equal(t, []byte("sealed"), sec.Sealed, "the client secret stays")
		_, err = s.Provider(ctx, store.DefaultWorkspaceID, "slack")
		require.NoError(t, err)
	})
}

package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

func insertDEK(t *testing.T, s *store.Store, ws string, p vault.Purpose, kek string, wrapped []byte) vault.DEKRecord {
	t.Helper()
	rec := vault.DEKRecord{ID: ids.New(ids.DEK), WorkspaceID: ws, Purpose: p, KEKID: kek, KEKVersion: "1",
		Wrapped: wrapped, CreatedAt: time.Now()}
	require.NoError(t, s.InsertDEK(context.Background(), rec))
	return rec
}

func TestDEKsToRewrapPagesInIDOrder(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var old []string
		for i := range 7 {
			old = append(old, insertDEK(t, s, fmt.Sprintf("ws_%d", i), vault.PurposeCredentials, "kek-old", []byte{byte(i)}).ID)
		}
		insertDEK(t, s, "ws_new", vault.PurposeCredentials, "kek-new", []byte("n"))        // already current
		insertDEK(t, s, "ws_0", vault.PurposeClientSecrets, "kek-cs-old", []byte("other")) // other purpose
		slices.Sort(old)

		var got []string
		after := ""
		for {
			page, err := s.DEKsToRewrap(ctx, vault.PurposeCredentials, "kek-new", after, 3)
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			require.LessOrEqual(t, len(page), 3)
			for _, r := range page {
				require.Equal(t, vault.PurposeCredentials, r.Purpose)
				require.Equal(t, "kek-old", r.KEKID)
				got = append(got, r.ID)
			}
			after = page[len(page)-1].ID
		}
		require.Equal(t, old, got, "every old DEK once, in id order")

		n, err := s.CountDEKsToRewrap(ctx, vault.PurposeCredentials, "kek-new")
		require.NoError(t, err)
		require.EqualValues(t, 7, n)
		byKEK, err := s.CountDEKsByKEK(ctx)
		require.NoError(t, err)
		require.Equal(t, map[string]int64{"kek-old": 7, "kek-new": 1, "kek-cs-old": 1}, byKEK)

		_, err = s.DEKsToRewrap(ctx, vault.PurposeCredentials, "kek-new", "", 0)
		require.Error(t, err)
	})
}

func TestSwapWrappedIsACompareAndSwap(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		rec := insertDEK(t, s, "ws_a", vault.PurposeCredentials, "kek-old", []byte("wrapped-old"))
		next := rec
		next.KEKID, next.KEKVersion, next.Wrapped = "kek-new", "7", []byte("wrapped-new")

		tests := []struct {
			name       string
			oldKEK     string
			oldWrapped []byte
		}{
			{"stale wrapped bytes", "kek-old", []byte("wrapped-other")},
			{"stale KEK id", "kek-other", []byte("wrapped-old")},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ok, err := s.SwapWrapped(ctx, rec.ID, tc.oldKEK, tc.oldWrapped, next)
				require.NoError(t, err)
				require.False(t, ok)
				got, err := s.DEK(ctx, rec.ID)
				require.NoError(t, err)
				require.Equal(t, "kek-old", got.KEKID, "a lost swap changes nothing")
				require.Equal(t, []byte("wrapped-old"), got.Wrapped)
			})
		}

		ok, err := s.SwapWrapped(ctx, rec.ID, "kek-old", []byte("wrapped-old"), next)
		require.NoError(t, err)
		require.True(t, ok)
		got, err := s.DEK(ctx, rec.ID)
		require.NoError(t, err)
		require.Equal(t, "kek-new", got.KEKID)
		require.Equal(t, "7", got.KEKVersion)
		require.Equal(t, []byte("wrapped-new"), got.Wrapped)
		require.Equal(t, rec.WorkspaceID, got.WorkspaceID)

		ok, err = s.SwapWrapped(ctx, rec.ID, "kek-old", []byte("wrapped-old"), next)
		require.NoError(t, err)
		require.False(t, ok, "the same swap twice: the second finds the row changed")

		evs, err := s.ListAudit(ctx, "ws_a", "", 10)
		require.NoError(t, err)
		require.Len(t, evs, 1, "one event for the one swap that happened")
		require.Equal(t, audit.KEKRotated, evs[0].Type)

		_, err = s.SwapWrappedBatch(ctx, []vault.DEKSwap{{Old: rec, New: vault.DEKRecord{ID: "dek_other"}}}, "x")
		require.Error(t, err, "a swap may not change the DEK's id, workspace or purpose")
	})
}

func TestSwapWrappedBatchAuditsEachWorkspace(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a1 := insertDEK(t, s, "ws_a", vault.PurposeCredentials, "kek-old", []byte("a1"))
		b1 := insertDEK(t, s, "ws_b", vault.PurposeCredentials, "kek-old", []byte("b1"))
		c1 := insertDEK(t, s, "ws_c", vault.PurposeCredentials, "kek-old", []byte("c1"))
		// ws_c's DEK is deleted before the batch commits: its swap must be lost.
		_, err := s.DeleteWorkspaceDEKs(ctx, "ws_c")
		require.NoError(t, err)

		sw := func(r vault.DEKRecord) vault.DEKSwap {
			n := r
			n.KEKID, n.Wrapped = "kek-new", append([]byte("new-"), r.Wrapped...)
			return vault.DEKSwap{Old: r, New: n}
		}
		ok, err := s.SwapWrappedBatch(ctx, []vault.DEKSwap{sw(a1), sw(b1), sw(c1)}, "apk_test")
		require.NoError(t, err)
		require.Equal(t, []bool{true, true, false}, ok)

		for _, ws := range []string{"ws_a", "ws_b"} {
			evs, err := s.ListAudit(ctx, ws, "", 10)
			require.NoError(t, err)
			require.Len(t, evs, 1, ws)
			require.Equal(t, audit.KEKRotated, evs[0].Type)
			require.Equal(t, "apk_test", evs[0].Actor)
			var data map[string]any
			require.NoError(t, json.Unmarshal([]byte(evs[0].Data), &data))
			require.Equal(t, "kek-new", data["kek_id"])
			require.Equal(t, []any{"kek-old"}, data["previous_kek_ids"])
			require.Equal(t, "credentials", data["purpose"])
			res, err := s.VerifyAudit(ctx, ws)
			require.NoError(t, err)
			require.True(t, res.OK)
		}
		evs, err := s.ListAudit(ctx, "ws_c", "", 10)
		require.NoError(t, err)
		require.Empty(t, evs, "no event for a DEK that was not swapped")
		_, err = s.DEK(ctx, c1.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "a lost swap never resurrects a deleted DEK")
	})
}

func TestRotationProgressRoundTrip(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		_, err := s.RotationProgress(ctx, vault.PurposeCredentials)
		require.ErrorIs(t, err, vault.ErrNotFound)

		start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
		p := vault.Progress{Purpose: vault.PurposeCredentials, KEKID: "kek-new", State: vault.RotationRunning,
			Done: 3, Total: 10, Cursor: "dek_c", StartedAt: start, UpdatedAt: start.Add(time.Second)}
		require.NoError(t, s.SaveRotationProgress(ctx, p))
		got, err := s.RotationProgress(ctx, vault.PurposeCredentials)
		require.NoError(t, err)
		require.Equal(t, p, got)

		p.State, p.Done, p.Failed, p.Cursor = vault.RotationDone, 9, 1, "dek_z"
		p.UpdatedAt, p.FinishedAt = start.Add(time.Minute), start.Add(time.Minute)
		require.NoError(t, s.SaveRotationProgress(ctx, p), "an upsert")
		got, err = s.RotationProgress(ctx, vault.PurposeCredentials)
		require.NoError(t, err)
		require.Equal(t, p, got)

		_, err = s.RotationProgress(ctx, vault.PurposeClientSecrets)
		require.ErrorIs(t, err, vault.ErrNotFound, "one row per purpose")

		p.State = vault.RotationIdle
		require.Error(t, s.SaveRotationProgress(ctx, p), "idle is derived, never stored")
	})
}

func TestDeleteWorkspaceDEKs(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a := insertDEK(t, s, "ws_a", vault.PurposeCredentials, "k", []byte("a"))
		insertDEK(t, s, "ws_a", vault.PurposeClientSecrets, "k2", []byte("a2"))
		b := insertDEK(t, s, "ws_b", vault.PurposeCredentials, "k", []byte("b"))

		n, err := s.DeleteWorkspaceDEKs(ctx, "ws_a")
		require.NoError(t, err)
		require.EqualValues(t, 2, n, "both purposes")
		_, err = s.DEK(ctx, a.ID)
		require.ErrorIs(t, err, vault.ErrNotFound)
		_, err = s.ActiveDEK(ctx, "ws_a", vault.PurposeClientSecrets)
		require.ErrorIs(t, err, vault.ErrNotFound)
		got, err := s.DEK(ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, b.Wrapped, got.Wrapped, "another workspace keeps its DEK")

		n, err = s.DeleteWorkspaceDEKs(ctx, "ws_a")
		require.NoError(t, err)
		require.Zero(t, n)
		_, err = s.DeleteWorkspaceDEKs(ctx, "")
		require.Error(t, err)
	})
}

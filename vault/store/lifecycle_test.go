package store_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// movableClock is a store clock a test can move forward.
type movableClock struct{ off atomic.Int64 }

func (c *movableClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *movableClock) advance(d time.Duration) { c.off.Add(int64(d)) }

func forEachDialectClock(t *testing.T, fn func(t *testing.T, s *store.Store, clock *movableClock)) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			clock := &movableClock{}
			s := storetest.Open(t, d, store.WithClock(clock.now))
			require.NoError(t, s.EnsureDefaultWorkspace(context.Background()))
			fn(t, s, clock)
		})
	}
}

func lcConn(t *testing.T, s *store.Store, ws, endUser string) store.Connection {
	t.Helper()
	now := time.Now().UTC()
	c := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: ws, Provider: "p", EndUserID: endUser,
		AuthMode: "oauth2", Status: store.StatusActive, Scopes: store.Strings{}, Version: 1, CreatedAt: now, UpdatedAt: now}
	cred := store.Credential{ConnectionID: c.ID, WorkspaceID: ws, AccessToken: []byte("sealed-at"), RefreshToken: []byte("sealed-rt"), UpdatedAt: now}
	require.NoError(t, s.CreateConnection(context.Background(), c, cred, ev(ws, audit.ConnectionCreated)))
	return c
}

func rowCount(t *testing.T, s *store.Store, table, where string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, s.DB().Table(table).Where(where, args...).Count(&n).Error)
	return n
}

func testSigner(t *testing.T) *audit.Signer {
	t.Helper()
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	sg, err := audit.NewSigner(seed)
	require.NoError(t, err)
	return sg
}

func TestRevocationLifecycle(t *testing.T) {
	forEachDialectClock(t, func(t *testing.T, s *store.Store, clock *movableClock) {
		ctx := context.Background()
		ws := store.DefaultWorkspaceID
		c := lcConn(t, s, ws, "u1")

		got, started, err := s.BeginRevoke(ctx, ws, c.ID, ev(ws, audit.ConnectionDisconnected))
		require.NoError(t, err)
		require.True(t, started)
		require.Equal(t, store.StatusRevokePending, got.Status)
		require.Nil(t, got.NextRefreshAt)
		_, started, err = s.BeginRevoke(ctx, ws, c.ID)
		require.NoError(t, err)
		require.False(t, started, "a second disconnect changes nothing")

		// Claimed once, then invisible until its next attempt.
		now := clock.now()
		claimed, err := s.ClaimRevocations(ctx, now, now.Add(time.Minute), 10)
		require.NoError(t, err)
		require.Len(t, claimed, 1)
		again, err := s.ClaimRevocations(ctx, now, now.Add(time.Minute), 10)
		require.NoError(t, err)
		require.Empty(t, again)

		next := now.Add(30 * time.Second)
		_, err = s.FinishRevoke(ctx, ws, c.ID, store.RevokeResult{Outcome: store.RetryLater, Next: next, ErrorCode: "provider_unavailable"})
		require.NoError(t, err)
		r, err := s.RevocationOf(ctx, c.ID)
		require.NoError(t, err)
		require.Equal(t, 1, r.Attempts)
		require.Equal(t, "provider_unavailable", r.LastError)
		require.EqualValues(t, 1, rowCount(t, s, "credentials", "connection_id = ?", c.ID), "kept while pending")
		claimed, err = s.ClaimRevocations(ctx, next.Add(time.Second), next.Add(time.Minute), 10)
		require.NoError(t, err)
		require.Len(t, claimed, 1)

		got, err = s.FinishRevoke(ctx, ws, c.ID, store.RevokeResult{Outcome: store.Revoked}, ev(ws, audit.ConnectionRevoked))
		require.NoError(t, err)
		require.Equal(t, store.StatusDisconnected, got.Status)
		require.EqualValues(t, 0, rowCount(t, s, "credentials", "connection_id = ?", c.ID), "ciphertext deleted")
		require.EqualValues(t, 0, rowCount(t, s, "revocations", "connection_id = ?", c.ID))
		_, err = s.FinishRevoke(ctx, ws, c.ID, store.RevokeResult{Outcome: store.Revoked})
		require.ErrorIs(t, err, store.ErrConflict, "no longer pending")

		// Not revocable: the sealed credential stays, the connection is disconnected.
		c2 := lcConn(t, s, ws, "u1")
		_, _, err = s.BeginRevoke(ctx, ws, c2.ID)
		require.NoError(t, err)
		got, err = s.FinishRevoke(ctx, ws, c2.ID, store.RevokeResult{Outcome: store.NotRevocable, ErrorCode: "revocation_unsupported"})
		require.NoError(t, err)
		require.Equal(t, store.StatusDisconnected, got.Status)
		require.EqualValues(t, 1, rowCount(t, s, "credentials", "connection_id = ?", c2.ID))
		v, err := s.VerifyAudit(ctx, ws)
		require.NoError(t, err)
		require.True(t, v.OK)
	})
}

func TestPurgeAfterRetention(t *testing.T) {
	forEachDialectClock(t, func(t *testing.T, s *store.Store, clock *movableClock) {
		ctx := context.Background()
		ws := store.DefaultWorkspaceID
		var old []store.Connection
		for i := 0; i < 5; i++ {
			c := lcConn(t, s, ws, "u")
			_, err := s.Disconnect(ctx, ws, c.ID, false, ev(ws, audit.ConnectionDisconnected)) // kept sealed
			require.NoError(t, err)
			old = append(old, c)
		}
		pending := lcConn(t, s, ws, "u")
		_, _, err := s.BeginRevoke(ctx, ws, pending.ID)
		require.NoError(t, err)
		active := lcConn(t, s, ws, "u")
		clock.advance(31 * 24 * time.Hour)
		recent := lcConn(t, s, ws, "u")
		_, err = s.Disconnect(ctx, ws, recent.ID, false)
		require.NoError(t, err)

		cutoff := clock.now().Add(-720 * time.Hour)
		n, err := s.PurgeConnections(ctx, cutoff, 2, true)
		require.NoError(t, err)
		require.EqualValues(t, 6, n, "dry run counts")
		require.EqualValues(t, 8, rowCount(t, s, "connections", "1 = 1"), "dry run deletes nothing")

		n, err = s.PurgeConnections(ctx, cutoff, 2, false) // batches of 2
		require.NoError(t, err)
		require.EqualValues(t, 6, n)
		for _, c := range append(old, pending) {
			require.EqualValues(t, 0, rowCount(t, s, "connections", "id = ?", c.ID))
			require.EqualValues(t, 0, rowCount(t, s, "credentials", "connection_id = ?", c.ID), "no ciphertext left")
			require.EqualValues(t, 0, rowCount(t, s, "revocations", "connection_id = ?", c.ID))
			require.EqualValues(t, 1, rowCount(t, s, "audit_events", "connection_id = ? AND type = ?", c.ID, audit.ConnectionPurged))
		}
		for _, c := range []store.Connection{active, recent} {
			require.EqualValues(t, 1, rowCount(t, s, "connections", "id = ?", c.ID), "untouched")
			require.EqualValues(t, 1, rowCount(t, s, "credentials", "connection_id = ?", c.ID))
		}
		v, err := s.VerifyAudit(ctx, ws)
		require.NoError(t, err)
		require.True(t, v.OK)
	})
}

func TestEraseEndUser(t *testing.T) {
	forEachDialectClock(t, func(t *testing.T, s *store.Store, _ *movableClock) {
		ctx := context.Background()
		ws := store.DefaultWorkspaceID
		a1, a2 := lcConn(t, s, ws, "alice"), lcConn(t, s, ws, "alice")
		b := lcConn(t, s, ws, "bob")
		require.NoError(t, s.CreateConnectSession(ctx, store.ConnectSession{ID: ids.New(ids.ConnectSession), WorkspaceID: ws,
			Provider: "p", EndUserID: "alice", CallbackURL: "https://x/cb", Scopes: store.Strings{},
			ExpiresAt: time.Now().Add(time.Minute), CreatedAt: time.Now()}))

		list, err := s.EndUserConnections(ctx, ws, "alice")
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.NotNil(t, list[0].Credential)

		n, err := s.EraseEndUser(ctx, ws, "alice", func(c store.Connection) audit.Event {
			return audit.Event{WorkspaceID: ws, Type: audit.ConnectionErased, Actor: "apk_t", ConnectionID: c.ID, Outcome: audit.Success}
		})
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		for _, c := range []store.Connection{a1, a2} {
			require.EqualValues(t, 0, rowCount(t, s, "connections", "id = ?", c.ID))
			require.EqualValues(t, 0, rowCount(t, s, "credentials", "connection_id = ?", c.ID))
			require.EqualValues(t, 1, rowCount(t, s, "audit_events", "connection_id = ? AND type = ?", c.ID, audit.ConnectionErased))
		}
		require.EqualValues(t, 0, rowCount(t, s, "connect_sessions", "end_user_id = ?", "alice"))
		require.EqualValues(t, 1, rowCount(t, s, "credentials", "connection_id = ?", b.ID), "bob untouched")
		n, err = s.EraseEndUser(ctx, ws, "alice", nil)
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

func TestDeleteWorkspace(t *testing.T) {
	forEachDialectClock(t, func(t *testing.T, s *store.Store, _ *movableClock) {
		ctx := context.Background()
		require.NoError(t, s.CreateWorkspace(ctx, store.Workspace{ID: "ws_gone", Name: "gone", CreatedAt: time.Now()}, nil,
			store.APIKey{ID: ids.New(ids.APIKey), WorkspaceID: "ws_gone", Name: "k", Prefix: "p", Hash: []byte("h-gone"),
				HashKeyID: "x", Scopes: store.Strings{"admin"}, CreatedAt: time.Now()}, ev("ws_gone", audit.WorkspaceCreated)))
		require.NoError(t, s.DB().Exec(`INSERT INTO deks (id, workspace_id, purpose, generation, kek_id, wrapped, created_at)
			VALUES ('dek_1', 'ws_gone', 'credentials', 1, 'kek', ?, ?)`, []byte("wrapped"), time.Now().UTC()).Error)
		c := lcConn(t, s, "ws_gone", "u")
		keep := lcConn(t, s, store.DefaultWorkspaceID, "u")

		_, err := s.DeleteWorkspace(ctx, store.DefaultWorkspaceID, "apk_t")
		require.ErrorIs(t, err, store.ErrConflict)
		del, err := s.DeleteWorkspace(ctx, "ws_gone", "apk_t")
		require.NoError(t, err)
		require.EqualValues(t, 1, del.DEKs)
		require.EqualValues(t, 1, del.Connections)
		require.EqualValues(t, 2, del.FinalHead.Seq)
		for _, table := range []string{"deks", "connections", "credentials", "api_keys", "audit_events", "audit_heads"} {
			require.EqualValues(t, 0, rowCount(t, s, table, "workspace_id = ?", "ws_gone"), table)
		}
		require.EqualValues(t, 0, rowCount(t, s, "workspaces", "id = ?", "ws_gone"))
		require.EqualValues(t, 0, rowCount(t, s, "credentials", "connection_id = ?", c.ID))
		require.EqualValues(t, 1, rowCount(t, s, "credentials", "connection_id = ?", keep.ID))
		var e struct{ Data string }
		require.NoError(t, s.DB().Table("audit_events").Where("workspace_id = ? AND type = ?", store.DefaultWorkspaceID,
			audit.WorkspaceDeleted).Take(&e).Error)
		var data map[string]any
		require.NoError(t, json.Unmarshal([]byte(e.Data), &data))
		require.Equal(t, "ws_gone", data["workspace_id"])
		require.Equal(t, del.FinalHead.Hash, data["final_hash"])
		_, err = s.DeleteWorkspace(ctx, "ws_gone", "apk_t")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

// evRow is an audit_events row as the tests read and restore it.
type evRow struct {
	ID           string `gorm:"primaryKey"`
	WorkspaceID  string
	Seq          int64
	At           time.Time
	Type         string
	Actor        string
	ConnectionID string
	Outcome      string
	ErrorCode    string
	Data         string
	PrevHash     string
	Hash         string
}

func (evRow) TableName() string { return "audit_events" }

// TestAuditTamperingWithCheckpoints: verify catches an edited event, a deleted middle
// event, a deleted tail (with a checkpoint, even when the head row is rewritten too) and a
// re-chained log (with a checkpoint); pruning keeps the chain verifiable from its anchor.
func TestAuditTamperingWithCheckpoints(t *testing.T) {
	forEachDialectClock(t, func(t *testing.T, s *store.Store, clock *movableClock) {
		ctx := context.Background()
		ws := store.DefaultWorkspaceID
		sg := testSigner(t)
		for i := 0; i < 10; i++ {
			require.NoError(t, s.AppendEvents(ctx, ev(ws, audit.TokenRead)))
		}
		heads, err := s.AuditHeads(ctx)
		require.NoError(t, err)
		require.Len(t, heads, 1)
		h := heads[0]
		cps := []audit.Checkpoint{sg.Sign(ws, h.Seq, h.Hash, h.EventID, clock.now())}
		res, err := s.VerifyAuditCheckpoints(ctx, ws, cps, sg.KeyID())
		require.NoError(t, err)
		require.True(t, res.OK, res.Reason)
		require.Equal(t, 10, res.Events)

		db := s.DB()
		var orig []evRow
		require.NoError(t, db.Where("workspace_id = ?", ws).Order("seq").Find(&orig).Error)
		var origHead map[string]any
		require.NoError(t, db.Table("audit_heads").Where("workspace_id = ?", ws).Take(&origHead).Error)
		restore := func(t *testing.T) {
			require.NoError(t, db.Exec("DELETE FROM audit_events WHERE workspace_id = ?", ws).Error)
			require.NoError(t, db.Create(&orig).Error)
			require.NoError(t, db.Table("audit_heads").Where("workspace_id = ?", ws).Updates(origHead).Error)
		}
		evAt := func(seq int64) audit.Event {
			var e audit.Event
			require.NoError(t, db.Table("audit_events").Where("workspace_id = ? AND seq = ?", ws, seq).Take(&e).Error)
			return e
		}
		tests := []struct {
			name   string
			tamper func()
			cps    []audit.Checkpoint
		}{
			{"edited event", func() {
				require.NoError(t, db.Exec("UPDATE audit_events SET outcome = 'failure' WHERE workspace_id = ? AND seq = 4", ws).Error)
			}, nil},
			{"deleted middle event", func() {
				require.NoError(t, db.Exec("DELETE FROM audit_events WHERE workspace_id = ? AND seq = 5", ws).Error)
			}, nil},
			{"deleted tail, head row rewritten to match", func() {
				e := evAt(7)
				require.NoError(t, db.Exec("DELETE FROM audit_events WHERE workspace_id = ? AND seq > 7", ws).Error)
				require.NoError(t, db.Exec("UPDATE audit_heads SET seq = 7, hash = ?, event_id = ? WHERE workspace_id = ?", e.Hash, e.ID, ws).Error)
			}, cps},
			{"re-chained log", func() {
				require.NoError(t, db.Exec("UPDATE audit_events SET outcome = 'failure' WHERE workspace_id = ? AND seq = 3", ws).Error)
				seq, prev := int64(2), evAt(2).Hash
				for i := int64(3); i <= 10; i++ {
					e := evAt(i)
					audit.Link(&e, seq, prev)
					require.NoError(t, db.Exec("UPDATE audit_events SET prev_hash = ?, hash = ?, at = ? WHERE id = ?", e.PrevHash, e.Hash, e.At, e.ID).Error)
					seq, prev = e.Seq, e.Hash
				}
				require.NoError(t, db.Exec("UPDATE audit_heads SET hash = ? WHERE workspace_id = ?", prev, ws).Error)
			}, cps},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				defer restore(t)
				tc.tamper()
				res, err := s.VerifyAuditCheckpoints(ctx, ws, tc.cps, sg.KeyID())
				require.NoError(t, err)
				require.False(t, res.OK)
				require.NotEmpty(t, res.FirstBadEvent)
				if tc.cps != nil {
					// Without the checkpoint the database alone agrees with itself.
					alone, err := s.VerifyAudit(ctx, ws)
					require.NoError(t, err)
					require.True(t, alone.OK, "%s is only detectable with a checkpoint", tc.name)
				}
			})
		}
		res, err = s.VerifyAuditCheckpoints(ctx, ws, cps, sg.KeyID())
		require.NoError(t, err)
		require.True(t, res.OK, "restored: %s", res.Reason)

		// Pruning: events older than the cutoff go; the anchor keeps the rest verifiable,
		// against the earlier checkpoint too.
		clock.advance(100 * 24 * time.Hour)
		for i := 0; i < 3; i++ {
			require.NoError(t, s.AppendEvents(ctx, ev(ws, audit.TokenRead)))
		}
		cutoff := clock.now().Add(-90 * 24 * time.Hour)
		n, _, err := s.PruneAudit(ctx, ws, cutoff, sg, 4, true)
		require.NoError(t, err)
		require.EqualValues(t, 10, n)
		n, anchor, err := s.PruneAudit(ctx, ws, cutoff, sg, 4, false) // batches of 4
		require.NoError(t, err)
		require.EqualValues(t, 10, n)
		require.NotNil(t, anchor)
		require.EqualValues(t, 10, anchor.Seq)
		require.EqualValues(t, 4, rowCount(t, s, "audit_events", "workspace_id = ?", ws), "3 new + audit.pruned")
		res, err = s.VerifyAuditCheckpoints(ctx, ws, append(cps, *anchor), sg.KeyID())
		require.NoError(t, err)
		require.True(t, res.OK, res.Reason)
		require.EqualValues(t, 10, res.StartSeq)
		v, err := s.VerifyAudit(ctx, ws, sg.KeyID())
		require.NoError(t, err)
		require.True(t, v.OK)
		v, err = s.VerifyAudit(ctx, ws)
		require.NoError(t, err)
		require.False(t, v.OK, "an anchor is trusted only under a deployment key")

		// A forged anchor (another key) is refused when the deployment's key is pinned.
		forged := testSigner(t).Sign(ws, anchor.Seq, anchor.Hash, anchor.EventID, clock.now())
		b, _ := json.Marshal(forged)
		require.NoError(t, db.Exec("UPDATE audit_anchors SET checkpoint = ? WHERE workspace_id = ?", string(b), ws).Error)
		res, err = s.VerifyAuditCheckpoints(ctx, ws, nil, sg.KeyID())
		require.NoError(t, err)
		require.False(t, res.OK)
		require.Contains(t, res.Reason, "anchor")
	})
}

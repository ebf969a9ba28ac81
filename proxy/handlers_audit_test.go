package proxy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

func appendTokenReads(t *testing.T, h *harness, n int) {
	t.Helper()
	evs := make([]audit.Event, n)
	for i := range evs {
		evs[i] = audit.Event{WorkspaceID: store.DefaultWorkspaceID, Type: audit.TokenRead, Actor: "test", Outcome: audit.Success}
	}
	require.NoError(t, h.app.Store.AppendEvents(context.Background(), evs...))
}

func auditHead(t *testing.T, h *harness) store.ChainHead {
	t.Helper()
	heads, err := h.app.Store.AuditHeads(context.Background())
	require.NoError(t, err)
	for _, hd := range heads {
		if hd.WorkspaceID == store.DefaultWorkspaceID {
			return hd
		}
	}
	t.Fatal("no head")
	return store.ChainHead{}
}

// TestAuditVerifyIncremental: GET /v1/audit/verify hashes only the events after the
// signed checkpoint of the last verified head; ?full=true hashes the whole chain; an event
// edited after the checkpoint is found by the incremental verification.
func TestAuditVerifyIncremental(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			h := newHarness(t, d, nil)
			reader := h.createKey("audit:read")
			appendTokenReads(t, h, 40)
			total := int(auditHead(t, h).Seq)

			v := h.expect(h.do("GET", "/v1/audit/verify", reader, nil), 200, "")
			require.Equal(t, true, v.Body["ok"], v.Raw)
			require.EqualValues(t, total, v.Body["events"], "nothing verified yet: the whole chain")

			appendTokenReads(t, h, 5)
			head := auditHead(t, h)
			v = h.expect(h.do("GET", "/v1/audit/verify", reader, nil), 200, "")
			require.Equal(t, true, v.Body["ok"], v.Raw)
			require.EqualValues(t, 5, v.Body["events"], "only the tail after the last verified checkpoint is hashed")
			require.EqualValues(t, total, v.Body["start_seq"])
			require.Equal(t, head.Hash, v.Body["head"])

			v = h.expect(h.do("GET", "/v1/audit/verify", reader, nil), 200, "")
			require.EqualValues(t, 0, v.Body["events"], "no new event: nothing to hash")
			v = h.expect(h.do("GET", "/v1/audit/verify?full=true", reader, nil), 200, "")
			require.Equal(t, true, v.Body["ok"], v.Raw)
			require.EqualValues(t, total+5, v.Body["events"])
			require.EqualValues(t, 0, v.Body["start_seq"])
			h.expect(h.do("GET", "/v1/audit/verify?full=yes", reader, nil), 400, "invalid_request")

			// An event edited after the last verified checkpoint.
			appendTokenReads(t, h, 3)
			db := h.app.Store.DB()
			var id string
			require.NoError(t, db.Table("audit_events").Select("id").
				Where("workspace_id = ? AND seq = ?", store.DefaultWorkspaceID, head.Seq+2).Scan(&id).Error)
			require.NoError(t, db.Exec("UPDATE audit_events SET outcome = 'failure' WHERE id = ?", id).Error)
			v = h.expect(h.do("GET", "/v1/audit/verify", reader, nil), 200, "")
			require.Equal(t, false, v.Body["ok"], v.Raw)
			require.Equal(t, id, v.Body["first_bad_event"])
			v = h.expect(h.do("GET", "/v1/audit/verify?full=true", reader, nil), 200, "")
			require.Equal(t, false, v.Body["ok"], v.Raw)
			require.Equal(t, id, v.Body["first_bad_event"])
		})
	}
}

// TestAuditVerifyRefusesSelfSignedStart: a chain whose start (the retained anchor of a
// pruned chain, or the last verified checkpoint) is signed by a key that is not one of the
// deployment's checkpoint keys does not verify, even though the signature itself holds.
func TestAuditVerifyRefusesSelfSignedStart(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			h := newHarness(t, d, nil)
			reader := h.createKey("audit:read")
			appendTokenReads(t, h, 20)
			db := h.app.Store.DB()
			var e audit.Event
			require.NoError(t, db.Table("audit_events").Where("workspace_id = ? AND seq = 10", store.DefaultWorkspaceID).Take(&e).Error)
			forger, err := audit.NewSigner(make([]byte, 32))
			require.NoError(t, err)
			forged := forger.Sign(store.DefaultWorkspaceID, e.Seq, e.Hash, e.ID, time.Now())
			line, err := json.Marshal(forged)
			require.NoError(t, err)
			require.NoError(t, forged.Verify(), "validly self-signed")

			// The last verified checkpoint, forged.
			require.NoError(t, db.Exec(`INSERT INTO audit_verifications (workspace_id, seq, hash, event_id, checkpoint)
				VALUES (?, ?, ?, ?, ?)`, store.DefaultWorkspaceID, e.Seq, e.Hash, e.ID, string(line)).Error)
			v := h.expect(h.do("GET", "/v1/audit/verify", reader, nil), 200, "")
			require.Equal(t, false, v.Body["ok"], v.Raw)
			require.Equal(t, e.ID, v.Body["first_bad_event"])
			v = h.expect(h.do("GET", "/v1/audit/verify?full=true", reader, nil), 200, "")
			require.Equal(t, true, v.Body["ok"], "a full verification does not start from it: %s", v.Raw)
			require.NoError(t, db.Exec(`DELETE FROM audit_verifications`).Error)

			// A pruned chain whose anchor someone signed with a key of their own.
			require.NoError(t, db.Exec(`INSERT INTO audit_anchors (workspace_id, seq, hash, event_id, checkpoint, created_at)
				VALUES (?, ?, ?, ?, ?, ?)`, store.DefaultWorkspaceID, e.Seq, e.Hash, e.ID, string(line), time.Now().UTC()).Error)
			require.NoError(t, db.Exec("DELETE FROM audit_events WHERE workspace_id = ? AND seq <= ?", store.DefaultWorkspaceID, e.Seq).Error)
			for _, q := range []string{"", "?full=true"} {
				v = h.expect(h.do("GET", "/v1/audit/verify"+q, reader, nil), 200, "")
				require.Equal(t, false, v.Body["ok"], v.Raw)
				require.Equal(t, e.ID, v.Body["first_bad_event"])
			}
		})
	}
}

// TestAuditVerifyOneAtATime: while a verification of the workspace holds its lease (here,
// on another replica), a call answers 429 rate_limited with Retry-After; concurrent calls
// never run two verifications at once.
func TestAuditVerifyOneAtATime(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			h := newHarness(t, d, nil)
			reader := h.createKey("audit:read")
			appendTokenReads(t, h, 10)
			ctx := context.Background()
			ok, err := h.app.Store.ClaimAuditVerification(ctx, store.DefaultWorkspaceID, "other-replica", time.Now().Add(time.Minute))
			require.NoError(t, err)
			require.True(t, ok)
			r := h.expect(h.do("GET", "/v1/audit/verify", reader, nil), 429, "rate_limited")
			require.Equal(t, "5", r.Header.Get("Retry-After"))
			h.expect(h.do("GET", "/v1/audit/verify?full=true", reader, nil), 429, "rate_limited")
			require.NoError(t, h.app.Store.ReleaseAuditVerification(ctx, store.DefaultWorkspaceID, "other-replica"))
			h.expect(h.do("GET", "/v1/audit/verify", reader, nil), 200, "")

			// An expired lease (its replica died) does not block.
			ok, err = h.app.Store.ClaimAuditVerification(ctx, store.DefaultWorkspaceID, "dead-replica", time.Now().Add(-time.Second))
			require.NoError(t, err)
			require.True(t, ok)
			h.expect(h.do("GET", "/v1/audit/verify", reader, nil), 200, "")

			var wg sync.WaitGroup
			statuses := make(chan int, 8)
			for range 8 {
				wg.Go(func() {
					statuses <- h.do("GET", "/v1/audit/verify?full=true", reader, nil).Status
				})
			}
			wg.Wait()
			close(statuses)
			for s := range statuses {
				require.Contains(t, []int{http.StatusOK, http.StatusTooManyRequests}, s)
			}
		})
	}
}

package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// reconnect runs a reconnect flow of connection id to its end.
func (f *flow) reconnect(id string) {
	f.t.Helper()
	r := f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/reconnect", f.key, nil), 201, "")
	b := f.browser()
	require.Equal(f.t, id, f.connected(b, f.toCallback(b, f.h.srv.URL+"/v1/connect/"+r.Body["id"].(string))))
}

// revocations is how many revocations of connection id are pending.
func (f *flow) revocations(id string) int {
	f.t.Helper()
	var n int64
	require.NoError(f.t, f.h.app.Store.DB().Table("revocations").Where("connection_id = ?", id).Count(&n).Error)
	return int(n)
}

// retry runs the revocation retry job once and returns how many revocations it ended.
func (f *flow) retry() int {
	f.t.Helper()
	n, err := f.h.app.Revocations.Retry(context.Background(), 100)
	require.NoError(f.t, err)
	return n
}

// TestReconnectRevokesTheReplacedGrant: a reconnect, of a connection whose revocation is
// pending (disconnected while the provider's revocation endpoint was down) or of an active
// one, queues the grant it replaces; once the endpoint is back the old tokens are inactive
// at the provider and nothing is left pending or re-claimed.
func TestReconnectRevokesTheReplacedGrant(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
			gate := newRevokeGate(t, f.as.RevocationURL())
			f.putProvider(gate.srv.URL + "/revoke")
			pending, active := f.connect("alice"), f.connect("bob")
			pAccess, pRefresh := f.storedTokens(pending)
			aAccess, aRefresh := f.storedTokens(active)
			f.sentinel(pAccess, pRefresh, aAccess, aRefresh)

			gate.down.Store(true)
			f.h.expect(f.h.do("DELETE", "/v1/connections/"+pending, f.key, nil), 200, "")
			require.Equal(t, store.StatusRevokePending, f.status(pending))
			f.reconnect(pending)
			f.reconnect(active)
			require.Equal(t, store.StatusActive, f.status(pending))
			require.Equal(t, 1, f.revocations(pending), "the disconnect's revocation now carries the replaced grant")
			require.Equal(t, 1, f.revocations(active), "the replaced grant is queued")
			require.True(t, f.as.RefreshActive(ctx, pRefresh), "control: not revoked while the endpoint is down")
			require.Zero(t, f.retry(), "the endpoint is down: both stay pending")
			require.Equal(t, 1, f.revocations(active))

			gate.down.Store(false)
			f.clock.advance(2 * time.Minute)
			require.Equal(t, 2, f.retry())
			for _, old := range []struct{ id, access, refresh string }{{pending, pAccess, pRefresh}, {active, aAccess, aRefresh}} {
				require.False(t, f.as.RefreshActive(ctx, old.refresh), "the replaced refresh token is revoked at the provider")
				require.False(t, f.as.Active(ctx, old.access), "the replaced access token is revoked at the provider")
				require.Zero(t, f.revocations(old.id), "the revocation has ended")
				access, refresh := f.storedTokens(old.id)
				require.True(t, f.as.RefreshActive(ctx, refresh), "the new grant is untouched")
				require.Equal(t, access, f.token(old.id))
				evs := f.auditEvents(audit.ConnectionRevoked, old.id)
				require.Equal(t, "success", evs[len(evs)-1]["outcome"])
				require.Equal(t, store.StatusActive, f.status(old.id))
			}

			// Never re-claimed: a day of retry runs calls the provider no more.
			hits := gate.hits.Load()
			for range 3 {
				f.clock.advance(8 * time.Hour)
				require.Zero(t, f.retry())
			}
			require.Equal(t, hits, gate.hits.Load())
			f.noLeaks()
		})
	}
}

// TestRevocationGivenUpAfterRetention: a revocation the provider keeps refusing ends when
// it has been pending for AUTHPIPE_RETENTION: given up, audited, never claimed again.
func TestRevocationGivenUpAfterRetention(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
			gate := newRevokeGate(t, f.as.RevocationURL())
			f.putProvider(gate.srv.URL + "/revoke")
			replaced, disconnected := f.connect("alice"), f.connect("bob")
			gate.down.Store(true)
			f.reconnect(replaced)
			f.h.expect(f.h.do("DELETE", "/v1/connections/"+disconnected, f.key, nil), 200, "")

			for elapsed := 2 * time.Hour; elapsed < 720*time.Hour; elapsed += 2 * time.Hour {
				f.clock.advance(2 * time.Hour)
				require.Zero(t, f.retry(), "inside the retention window: retried, not ended")
			}
			require.Equal(t, 1, f.revocations(replaced))
			require.Equal(t, 1, f.revocations(disconnected))
			hits := gate.hits.Load()
			f.clock.advance(2 * time.Hour)
			require.Equal(t, 2, f.retry(), "past the retention window: given up")
			require.Equal(t, hits, gate.hits.Load(), "given up without another call")
			for _, id := range []string{replaced, disconnected} {
				require.Zero(t, f.revocations(id))
				evs := f.auditEvents(audit.ConnectionRevoked, id)
				last := evs[len(evs)-1]
				require.Equal(t, "failure", last["outcome"])
				require.Equal(t, "revocation_given_up", last["error_code"])
			}
			require.Equal(t, store.StatusActive, f.status(replaced))
			require.Equal(t, store.StatusDisconnected, f.status(disconnected))
			require.EqualValues(t, 1, f.credentialRows(disconnected), "sealed until the purge")
			f.clock.advance(24 * time.Hour)
			require.Zero(t, f.retry())
			require.Equal(t, hits, gate.hits.Load(), "never claimed again")
			v := f.h.expect(f.h.do("GET", "/v1/audit/verify", bootstrapKey, nil), 200, "")
			require.Equal(t, true, v.Body["ok"])
		})
	}
}

// TestEraseRevokesReplacedGrants: erasing an end user also revokes the grants that their
// reconnects replaced and whose revocation is still pending.
func TestEraseRevokesReplacedGrants(t *testing.T) {
	ctx := context.Background()
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	gate := newRevokeGate(t, f.as.RevocationURL())
	f.putProvider(gate.srv.URL + "/revoke")
	id := f.connect("alice")
	_, oldRefresh := f.storedTokens(id)
	gate.down.Store(true)
	f.reconnect(id)
	_, newRefresh := f.storedTokens(id)
	f.sentinel(oldRefresh, newRefresh)
	gate.down.Store(false)

	r := f.h.expect(f.h.do("DELETE", "/v1/end-users/alice", bootstrapKey, nil), 200, "")
	require.EqualValues(t, 1, r.Body["deleted"])
	require.False(t, f.as.RefreshActive(ctx, newRefresh))
	require.False(t, f.as.RefreshActive(ctx, oldRefresh), "the replaced grant is revoked before it is deleted")
	require.Zero(t, f.revocations(id))
	f.noLeaks()
}

// TestStaleRevocationIsDropped: a revocation of a connection's own credential that is no
// longer revoke_pending (as a reconnect left it before replaced grants were queued) is
// deleted by the first retry that claims it, not re-claimed forever.
func TestStaleRevocationIsDropped(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
			id := f.connect("alice")
			now := f.clock.now().UTC()
			require.NoError(t, f.h.app.Store.DB().Exec(`INSERT INTO revocations (id, connection_id, workspace_id, attempts,
				next_attempt_at, last_error, created_at) VALUES (?, ?, ?, 3, ?, 'provider_unavailable', ?)`,
				id, id, store.DefaultWorkspaceID, now, now).Error) // a row as migration 00015 carries it over
			f.retry()
			require.Zero(t, f.revocations(id), "dropped: there is nothing left to revoke")
			require.Equal(t, store.StatusActive, f.status(id))
			calls := f.as.RevokeCalls()
			f.clock.advance(2 * time.Hour)
			require.Zero(t, f.retry())
			require.Equal(t, calls, f.as.RevokeCalls())
		})
	}
}

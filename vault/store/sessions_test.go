package store_test

import (
	"context"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

func newSession(now time.Time) store.ConnectSession {
	return store.ConnectSession{ID: ids.New(ids.ConnectSession), WorkspaceID: store.DefaultWorkspaceID, Provider: "gh",
		EndUserID: "user-1", CallbackURL: "https://proxy.example.com/v1/oauth/callback",
		ReturnURL: "https://app.example.com/done", Scopes: store.Strings{"repo"},
		ExpiresAt: now.Add(10 * time.Minute), CreatedAt: now}
}

func start(state string) store.SessionStart {
	h := sha256.Sum256([]byte(state))
	return store.SessionStart{StateHash: h[:], PKCEVerifier: []byte("sealed-verifier"), BrowserBinding: []byte("binding")}
}

func TestConnectSessionLifecycle(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		now := time.Now().UTC()
		cs := newSession(now)
		require.NoError(t, s.CreateConnectSession(ctx, cs))

		got, err := s.ConnectSession(ctx, cs.ID)
		require.NoError(t, err)
		require.Equal(t, cs.Scopes, got.Scopes)
		require.Nil(t, got.StartedAt)
		require.Nil(t, got.StateHash)
		_, err = s.ConnectSession(ctx, "cs_unknown")
		require.ErrorIs(t, err, store.ErrNotFound)

		st := start("state-1")
		_, err = s.ConnectSessionByState(ctx, st.StateHash)
		require.ErrorIs(t, err, store.ErrNotFound, "not started yet")
		require.ErrorIs(t, s.ConsumeConnectSession(ctx, cs.ID, st.StateHash, now), store.ErrConflict, "not started")

		require.NoError(t, s.StartConnectSession(ctx, cs.ID, st, now.Add(time.Second)))
		require.ErrorIs(t, s.StartConnectSession(ctx, cs.ID, start("state-2"), now.Add(2*time.Second)), store.ErrConflict,
			"a session starts once")
		require.ErrorIs(t, s.StartConnectSession(ctx, "cs_unknown", start("state-3"), now), store.ErrConflict)

		byState, err := s.ConnectSessionByState(ctx, st.StateHash)
		require.NoError(t, err)
		require.Equal(t, cs.ID, byState.ID)
		require.Equal(t, []byte("sealed-verifier"), byState.PKCEVerifier)
		require.Equal(t, []byte("binding"), byState.BrowserBinding)
		require.NotNil(t, byState.StartedAt)
		other := start("state-2")
		_, err = s.ConnectSessionByState(ctx, other.StateHash)
		require.ErrorIs(t, err, store.ErrNotFound, "the refused second start wrote nothing")

		require.ErrorIs(t, s.ConsumeConnectSession(ctx, cs.ID, other.StateHash, now), store.ErrConflict, "wrong state")
		require.NoError(t, s.ConsumeConnectSession(ctx, cs.ID, st.StateHash, now.Add(time.Minute)))
		require.ErrorIs(t, s.ConsumeConnectSession(ctx, cs.ID, st.StateHash, now.Add(time.Minute)), store.ErrConflict,
			"single use")
		used, err := s.ConnectSession(ctx, cs.ID)
		require.NoError(t, err)
		require.NotNil(t, used.UsedAt)
	})
}

func TestConnectSessionExpiry(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		now := time.Now().UTC()

		late := newSession(now)
		require.NoError(t, s.CreateConnectSession(ctx, late))
		require.ErrorIs(t, s.StartConnectSession(ctx, late.ID, start("a"), now.Add(10*time.Minute+time.Millisecond)),
			store.ErrConflict, "an expired session cannot start")

		cs := newSession(now)
		require.NoError(t, s.CreateConnectSession(ctx, cs))
		st := start("b")
		require.NoError(t, s.StartConnectSession(ctx, cs.ID, st, now.Add(9*time.Minute)))
		require.ErrorIs(t, s.ConsumeConnectSession(ctx, cs.ID, st.StateHash, now.Add(11*time.Minute)), store.ErrConflict,
			"an expired session cannot be consumed")

		n, err := s.DeleteExpiredConnectSessions(ctx, now.Add(11*time.Minute))
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		_, err = s.ConnectSession(ctx, cs.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestConnectSessionConsumeRace(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		now := time.Now().UTC()
		cs := newSession(now)
		require.NoError(t, s.CreateConnectSession(ctx, cs))
		st := start("race")
		require.NoError(t, s.StartConnectSession(ctx, cs.ID, st, now))
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.ConsumeConnectSession(ctx, cs.ID, st.StateHash, now)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					wins++
				} else if err == store.ErrConflict { //nolint:errorlint // the sentinel itself
					conflicts++
				}
			}()
		}
		wg.Wait()
		require.Equal(t, 1, wins)
		require.Equal(t, 7, conflicts)
	})
}

func TestSaveOAuthConnection(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		ws := store.DefaultWorkspaceID
		now := time.Now().UTC().Truncate(time.Second)
		exp := now.Add(time.Hour)
		conn := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: ws, Provider: "gh", EndUserID: "u1",
			AuthMode: "oauth2", Status: store.StatusActive, Scopes: store.Strings{"repo"}, CredentialPrefix: "gho_",
			ExpiresAt: &exp, Version: 1, CreatedAt: now, UpdatedAt: now}
		cred := store.Credential{ConnectionID: conn.ID, WorkspaceID: ws, AccessToken: []byte("a1"),
			RefreshToken: []byte("r1"), TokenType: "Bearer", UpdatedAt: now}
		_, err := s.SaveOAuthConnection(ctx, conn, cred, false, ev(ws, audit.ConnectionCreated))
		require.NoError(t, err)

		bad := cred
		bad.ConnectionID = "conn_other"
		_, err = s.SaveOAuthConnection(ctx, conn, bad, true)
		require.Error(t, err, "a credential of another connection is refused")

		_, err = s.Disconnect(ctx, ws, conn.ID, true, ev(ws, audit.ConnectionDisconnected))
		require.NoError(t, err)

		later := now.Add(time.Hour)
		exp2 := later.Add(2 * time.Hour)
		re := conn
		re.Scopes, re.CredentialPrefix, re.ExpiresAt, re.UpdatedAt = store.Strings{"repo", "user"}, "gho2", &exp2, later
		re.EndUserID, re.CreatedAt = "ignored", later
		cred2 := store.Credential{ConnectionID: conn.ID, WorkspaceID: ws, AccessToken: []byte("a2"), TokenType: "Bearer", UpdatedAt: later}
		out, err := s.SaveOAuthConnection(ctx, re, cred2, true, ev(ws, audit.ConnectionReconnected))
		require.NoError(t, err)
		require.Equal(t, conn.ID, out.ID)
		require.Equal(t, "u1", out.EndUserID, "the end user is kept")
		require.Equal(t, store.StatusActive, out.Status)
		require.EqualValues(t, 3, out.Version, "created 1, disconnected 2, reconnected 3")

		cc, err := s.ConnectionWithCredential(ctx, ws, conn.ID)
		require.NoError(t, err)
		require.Equal(t, store.StatusActive, cc.Status)
		require.Nil(t, cc.DisconnectedAt)
		require.Equal(t, store.Strings{"repo", "user"}, cc.Scopes)
		require.True(t, cc.CreatedAt.Equal(now), "creation time kept")
		require.NotNil(t, cc.Credential)
		require.Equal(t, []byte("a2"), cc.Credential.AccessToken)
		require.Nil(t, cc.Credential.RefreshToken, "the old refresh token is gone")

		wrong := re
		wrong.Provider = "slack"
		cred3 := cred2
		_, err = s.SaveOAuthConnection(ctx, wrong, cred3, true, ev(ws, audit.ConnectionReconnected))
		require.ErrorIs(t, err, store.ErrConflict, "reconnect cannot switch the provider")
		missing := re
		missing.ID = ids.New(ids.Connection)
		cred4 := cred2
		cred4.ConnectionID = missing.ID
		_, err = s.SaveOAuthConnection(ctx, missing, cred4, true)
		require.ErrorIs(t, err, store.ErrNotFound)

		evs, err := s.ListAudit(ctx, ws, "", 10)
		require.NoError(t, err)
		require.Len(t, evs, 3, "created, disconnected, reconnected; the refused attempts left nothing")
		require.Equal(t, audit.ConnectionReconnected, evs[2].Type)
	})
}

package proxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// connect runs one connect flow for endUser and returns the connection id.
func (f *flow) connect(endUser string) string {
	f.t.Helper()
	_, connectURL := f.session(map[string]any{"provider": "fosite", "end_user_id": endUser})
	b := f.browser()
	return f.connected(b, f.toCallback(b, connectURL))
}

// storedTokens opens a connection's stored access and refresh tokens (the test plays the
// provider's side: which tokens must the provider now refuse?).

// sentinel adds values that must never reach a log or a response body from now on.
func (f *flow) sentinel(vals ...string) {
	f.mu.Lock()
	f.secrets = append(f.secrets, vals...)
	f.mu.Unlock()
}

func (f *flow) storedTokens(id string) (access, refresh string) {
	f.t.Helper()
	var cred store.Credential
	require.NoError(f.t, f.h.app.Store.DB().Where("connection_id = ?", id).Take(&cred).Error)
	open := func(bind func(workspaceID, connectionID string, o vault.Origins) vault.Binding, o *store.Strings, env []byte) string {
		sec, err := f.h.app.Creds.Open(context.Background(), bind(store.DefaultWorkspaceID, id, store.BoundOrigins(o)), env)
		require.NoError(f.t, err)
		return sec.Reveal()
	}
	return open(vault.AccessTokenBinding, cred.AccessOrigins, cred.AccessToken),
		open(vault.RefreshTokenBinding, cred.RefreshOrigins, cred.RefreshToken)
}

// refreshAtProvider tries a refresh grant with token at the provider and returns the status.
func (f *flow) refreshAtProvider(token string) int {
	f.t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}
	req, err := http.NewRequest("POST", f.as.TokenURL(), strings.NewReader(form.Encode()))
	require.NoError(f.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(f.as.ClientID(), clientSecret)
	res, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	res.Body.Close()
	return res.StatusCode
}

// putProvider (re)configures the fosite provider with another revocation URL.
func (f *flow) putProvider(revocationURL string) {
	f.t.Helper()
	f.h.expect(f.h.do("PUT", "/v1/providers/fosite", bootstrapKey, map[string]any{
		"display_name": "Fosite", "auth_mode": "oauth2", "client_id": f.as.ClientID(), "client_secret": clientSecret,
		"scopes": []string{"read"}, "callback_urls": []string{f.callback}, "return_urls": []string{f.ret},
		"authorization_url": f.as.AuthorizationURL(), "token_url": f.as.TokenURL(), "revocation_url": revocationURL,
		"issuer": f.as.Issuer(), "token_auth_method": "client_secret_basic",
	}), 200, "")
}

func (f *flow) status(id string) string {
	f.t.Helper()
	var c store.Connection
	require.NoError(f.t, f.h.app.Store.DB().Where("id = ?", id).Take(&c).Error)
	return c.Status
}

func (f *flow) credentialRows(id string) int64 {
	f.t.Helper()
	var n int64
	require.NoError(f.t, f.h.app.Store.DB().Model(&store.Credential{}).Where("connection_id = ?", id).Count(&n).Error)
	return n
}

// auditEvents returns the default workspace's events of a type (and connection, if given).
func (f *flow) auditEvents(typ, conn string) []map[string]any {
	f.t.Helper()
	r := f.h.expect(f.h.do("GET", "/v1/audit?limit=1000", bootstrapKey, nil), 200, "")
	var out []map[string]any
	for _, e := range r.Body["events"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] == typ && (conn == "" || ev["connection_id"] == conn) {
			out = append(out, ev)
		}
	}
	return out
}

func TestDisconnectRevokesAtTheProvider(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
			id, other := f.connect("alice"), f.connect("bob")
			access, refresh := f.storedTokens(id)
			_, otherRefresh := f.storedTokens(other)
			f.sentinel(access, refresh)
			require.True(t, f.as.Active(context.Background(), access))
			require.Equal(t, http.StatusOK, f.refreshAtProvider(otherRefresh), "control: a live refresh token is accepted")

			r := f.h.expect(f.h.do("DELETE", "/v1/connections/"+id, f.key, nil), 200, "")
			require.Equal(t, "disconnected", r.Body["status"])
			require.EqualValues(t, 2, f.as.RevokeCalls(), "refresh token, then access token (RFC 7009)")
			require.False(t, f.as.Active(context.Background(), access), "the provider refuses the old access token")
			require.Equal(t, http.StatusUnauthorized, f.apiCall(access))
			require.Equal(t, http.StatusBadRequest, f.refreshAtProvider(refresh), "the provider refuses the old refresh token")
			require.Zero(t, f.credentialRows(id), "the ciphertext is deleted at once")
			require.Equal(t, store.StatusDisconnected, f.status(id))
			f.h.expect(f.h.do("GET", "/v1/connections/"+id+"/token", f.key, nil), 410, "disconnected")
			require.Eventually(t, func() bool {
				for _, e := range f.auditEvents(audit.TokenRead, id) {
					if e["outcome"] == "failure" && e["error_code"] == "disconnected" {
						return true
					}
				}
				return false
			}, 5*time.Second, 50*time.Millisecond, "the refused read is audited with its code")

			// Idempotent: a second disconnect changes nothing and calls no provider.
			f.h.expect(f.h.do("DELETE", "/v1/connections/"+id, f.key, nil), 200, "")
			require.EqualValues(t, 2, f.as.RevokeCalls())
			require.Len(t, f.auditEvents(audit.ConnectionDisconnected, id), 1)
			rev := f.auditEvents(audit.ConnectionRevoked, id)
			require.Len(t, rev, 1)
			require.Equal(t, "success", rev[0]["outcome"])
			f.noLeaks()
		})
	}
}

// revokeGate stands in front of fosite's revocation endpoint and answers 503 while down.
type revokeGate struct {
	srv  *httptest.Server
	down atomic.Bool
	hits atomic.Int64
}

func newRevokeGate(t *testing.T, target string) *revokeGate {
	u, err := url.Parse(target)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	g := &revokeGate{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.hits.Add(1)
		if g.down.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"temporarily_unavailable"}`))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func TestDisconnectRevokePendingThenRetried(t *testing.T) {
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	gate := newRevokeGate(t, f.as.RevocationURL())
	f.putProvider(gate.srv.URL + "/revoke")
	id := f.connect("alice")
	access, refresh := f.storedTokens(id)
	f.sentinel(access, refresh)
	gate.down.Store(true)

	r := f.h.expect(f.h.do("DELETE", "/v1/connections/"+id, f.key, nil), 200, "")
	require.Equal(t, "disconnected", r.Body["status"], "the API shows disconnected")
	require.Equal(t, store.StatusRevokePending, f.status(id))
	require.EqualValues(t, 1, f.credentialRows(id), "kept sealed until revoked")
	require.True(t, f.as.Active(context.Background(), access), "not revoked yet")
	f.h.expect(f.h.do("GET", "/v1/connections/"+id+"/token", f.key, nil), 410, "disconnected")
	failed := f.auditEvents(audit.ConnectionRevoked, id)
	require.Len(t, failed, 1)
	require.Equal(t, "failure", failed[0]["outcome"])

	// Not due yet: the retry job leaves it alone.
	ctx := context.Background()
	n, err := f.h.app.Revocations.Retry(ctx, 10)
	require.NoError(t, err)
	require.Zero(t, n)
	// Due, provider still down: another failure, backoff grows.
	f.clock.advance(time.Minute)
	hits := gate.hits.Load()
	n, err = f.h.app.Revocations.Retry(ctx, 10)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Greater(t, gate.hits.Load(), hits)
	rv, err := f.h.app.Store.RevocationOf(ctx, id)
	require.NoError(t, err)
	require.Equal(t, 2, rv.Attempts)
	require.Equal(t, "provider_unavailable", rv.LastError)

	gate.down.Store(false)
	f.clock.advance(5 * time.Minute)
	n, err = f.h.app.Revocations.Retry(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, store.StatusDisconnected, f.status(id))
	require.Zero(t, f.credentialRows(id))
	require.False(t, f.as.Active(context.Background(), access))
	require.Equal(t, http.StatusBadRequest, f.refreshAtProvider(refresh))
	ok := f.auditEvents(audit.ConnectionRevoked, id)
	require.Len(t, ok, 3)
	require.Equal(t, "success", ok[2]["outcome"])
	require.Equal(t, "system:revoke-retry", ok[2]["actor"])
	f.noLeaks()
}

const stripeKeyAlice = "sk_live_SENTINELaliceKEYabcdefghij"
const stripeKeyBob = "sk_live_SENTINELbobKEYabcdefghijkl"

func TestDisconnectedAPIKeyIsPurgedAfterRetention(t *testing.T) {
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	ctx := context.Background()
	c := f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "stripe", "end_user_id": "alice",
		"api_key": stripeKeyAlice}), 201, "")
	id := c.Body["id"].(string)
	f.putProvider("") // no revocation endpoint
	oauthID := f.connect("bob")

	f.h.expect(f.h.do("DELETE", "/v1/connections/"+id, f.key, nil), 200, "")
	f.h.expect(f.h.do("DELETE", "/v1/connections/"+oauthID, f.key, nil), 200, "")
	require.Zero(t, f.as.RevokeCalls(), "no revocation endpoint: nothing to call")
	for _, x := range []string{id, oauthID} {
		require.Equal(t, store.StatusDisconnected, f.status(x))
		require.EqualValues(t, 1, f.credentialRows(x), "sealed until the retention window ends")
		f.h.expect(f.h.do("GET", "/v1/connections/"+x+"/token", f.key, nil), 410, "disconnected")
	}

	rep, err := f.h.app.Purge(ctx, false)
	require.NoError(t, err)
	require.Zero(t, rep.Connections, "inside retention")
	f.clock.advance(721 * time.Hour)
	rep, err = f.h.app.Purge(ctx, true)
	require.NoError(t, err)
	require.EqualValues(t, 2, rep.Connections)
	require.EqualValues(t, 1, f.credentialRows(id), "a dry run deletes nothing")
	rep, err = f.h.app.Purge(ctx, false)
	require.NoError(t, err)
	require.EqualValues(t, 2, rep.Connections)
	require.EqualValues(t, 1, rep.Sessions, "bob's used connect session has expired")
	for _, x := range []string{id, oauthID} {
		var n int64
		require.NoError(t, f.h.app.Store.DB().Model(&store.Connection{}).Where("id = ?", x).Count(&n).Error)
		require.Zero(t, n, "no row")
		require.Zero(t, f.credentialRows(x), "no ciphertext")
		require.Len(t, f.auditEvents(audit.ConnectionPurged, x), 1)
	}
	f.h.expect(f.h.do("GET", "/v1/connections/"+id, f.key, nil), 404, "not_found")
	v := f.h.expect(f.h.do("GET", "/v1/audit/verify", bootstrapKey, nil), 200, "")
	require.Equal(t, true, v.Body["ok"])
}

func TestEraseEndUser(t *testing.T) {
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	aliceOAuth := f.connect("alice")
	access, aliceRefresh := f.storedTokens(aliceOAuth)
	f.sentinel(access, aliceRefresh)
	aliceKey := f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "stripe", "end_user_id": "alice",
		"api_key": stripeKeyAlice}), 201, "").Body["id"].(string)
	bobOAuth := f.connect("bob")
	bobKey := f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "stripe", "end_user_id": "bob",
		"api_key": stripeKeyBob}), 201, "").Body["id"].(string)
	bobAccess, _ := f.storedTokens(bobOAuth)

	exp := f.h.expect(f.h.do("GET", "/v1/end-users/alice/export", bootstrapKey, nil), 200, "")
	require.Len(t, exp.Body["connections"], 2)
	require.NotContains(t, exp.Raw, stripeKeyAlice)
	require.NotContains(t, exp.Raw, access)
	f.h.expect(f.h.do("DELETE", "/v1/end-users/alice", f.key, nil), 403, "forbidden")

	r := f.h.expect(f.h.do("DELETE", "/v1/end-users/alice", bootstrapKey, nil), 200, "")
	require.EqualValues(t, 2, r.Body["deleted"])
	require.False(t, f.as.Active(context.Background(), access), "alice's OAuth token revoked at the provider")
	for _, id := range []string{aliceOAuth, aliceKey} {
		f.h.expect(f.h.do("GET", "/v1/connections/"+id, f.key, nil), 404, "not_found")
		require.Zero(t, f.credentialRows(id))
		ev := f.auditEvents(audit.ConnectionErased, id)
		require.Len(t, ev, 1)
		require.Equal(t, "success", ev[0]["outcome"])
	}
	erased := f.auditEvents(audit.ConnectionErased, "")
	require.Len(t, erased, 2)
	all := f.h.expect(f.h.do("GET", "/v1/audit?limit=1000", bootstrapKey, nil), 200, "")
	require.NotContains(t, all.Raw, stripeKeyAlice)
	require.NotContains(t, all.Raw, access)
	var n int64
	require.NoError(t, f.h.app.Store.DB().Model(&store.ConnectSession{}).Where("end_user_id = ?", "alice").Count(&n).Error)
	require.Zero(t, n, "alice's connect sessions are gone")

	// Bob is untouched.
	require.True(t, f.as.Active(context.Background(), bobAccess))
	require.Equal(t, bobAccess, f.token(bobOAuth))
	tok := f.h.expect(f.h.do("GET", "/v1/connections/"+bobKey+"/token", f.key, nil), 200, "")
	require.Equal(t, stripeKeyBob, tok.Body["api_key"])
	exp = f.h.expect(f.h.do("GET", "/v1/end-users/bob/export", bootstrapKey, nil), 200, "")
	require.Len(t, exp.Body["connections"], 2)
	exp = f.h.expect(f.h.do("GET", "/v1/end-users/alice/export", bootstrapKey, nil), 200, "")
	require.Empty(t, exp.Body["connections"])
	r = f.h.expect(f.h.do("DELETE", "/v1/end-users/alice", bootstrapKey, nil), 200, "")
	require.EqualValues(t, 0, r.Body["deleted"])
	v := f.h.expect(f.h.do("GET", "/v1/audit/verify", bootstrapKey, nil), 200, "")
	require.Equal(t, true, v.Body["ok"])
	f.sentinel(stripeKeyAlice)
	require.NotContains(t, f.h.logs.String(), stripeKeyBob)
	f.noLeaks()
}

func TestDeleteWorkspace(t *testing.T) {
	h := newClockHarness(t, store.SQLite, nil, &testClock{})
	ws := h.expect(h.do("POST", "/v1/workspaces", bootstrapKey, map[string]any{"name": "acme"}), 201, "")
	wsID := ws.Body["id"].(string)
	key := ws.Body["api_key"].(map[string]any)["key"].(string)
	conn := h.expect(h.do("POST", "/v1/connections", key, map[string]any{"provider": "stripe", "end_user_id": "u",
		"api_key": stripeKeyAlice}), 201, "").Body["id"].(string)
	h.expect(h.do("GET", "/v1/connections/"+conn+"/token", key, nil), 200, "")
	// The read's token.read event goes through the batched writer: wait until it is in the
	// chain, so that the deletion below is what removes it.
	require.Eventually(t, func() bool {
		return strings.Contains(h.do("GET", "/v1/audit?limit=1000", key, nil).Raw, `"token.read"`)
	}, 10*time.Second, 20*time.Millisecond)
	h.expect(h.do("GET", "/v1/audit/verify", key, nil), 200, "") // leaves its verified checkpoint
	db := h.app.Store.DB()
	var deks int64
	require.NoError(t, db.Table("deks").Where("workspace_id = ?", wsID).Count(&deks).Error)
	require.Positive(t, deks)

	h.expect(h.do("DELETE", "/v1/workspaces/"+store.DefaultWorkspaceID, bootstrapKey, nil), 409, "conflict")
	h.expect(h.do("DELETE", "/v1/workspaces/"+wsID, key, nil), 403, "forbidden")
	h.expect(h.do("DELETE", "/v1/workspaces/"+wsID, bootstrapKey, nil), 204, "")
	for _, table := range []string{"deks", "connections", "credentials", "api_keys", "audit_events", "audit_heads", "audit_verifications"} {
		var n int64
		require.NoError(t, db.Table(table).Where("workspace_id = ?", wsID).Count(&n).Error)
		require.Zero(t, n, table)
	}
	time.Sleep(1100 * time.Millisecond) // the auth cache's TTL
	h.expect(h.do("GET", "/v1/connections/"+conn+"/token", key, nil), 401, "unauthorized")
	h.expect(h.do("DELETE", "/v1/workspaces/"+wsID, bootstrapKey, nil), 404, "not_found")
	r := h.expect(h.do("GET", "/v1/audit?limit=1000", bootstrapKey, nil), 200, "")
	found := false
	for _, e := range r.Body["events"].([]any) {
		if ev := e.(map[string]any); ev["type"] == audit.WorkspaceDeleted {
			found = true
		}
	}
	require.True(t, found, "the deletion is recorded in the default workspace's chain")
	require.NotContains(t, h.logs.String(), stripeKeyAlice)
}

func TestAuditCheckpointsToFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	clock := &testClock{}
	h := newClockHarness(t, store.SQLite, map[string]string{"AUTHPIPE_AUDIT_CHECKPOINT_FILE": file, "AUTHPIPE_AUDIT_RETENTION": "24h"}, clock)
	ctx := context.Background()
	reader := h.createKey("audit:read")
	keys := h.expect(h.do("GET", "/v1/audit/checkpoint-keys", reader, nil), 200, "")
	k := keys.Body["keys"].([]any)[0].(map[string]any)
	kid := k["kid"].(string)
	require.True(t, strings.HasPrefix(kid, "ckp_"))
	require.Equal(t, "Ed25519", k["alg"])

	n, err := h.app.WriteCheckpoints(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = h.app.WriteCheckpoints(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "the head has not moved")
	h.createKey("tokens:read")
	n, err = h.app.WriteCheckpoints(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	f, err := os.Open(file)
	require.NoError(t, err)
	cps, err := audit.ReadCheckpoints(f, kid)
	f.Close()
	require.NoError(t, err)
	require.Len(t, cps, 2)
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	require.Contains(t, h.logs.String(), `"msg":"audit checkpoint"`)
	res, err := h.app.Store.VerifyAuditCheckpoints(ctx, store.DefaultWorkspaceID, cps, kid)
	require.NoError(t, err)
	require.True(t, res.OK, res.Reason)

	// Audit retention: a day later everything before is pruned; the chain still verifies
	// from the anchor, against the checkpoints written before.
	clock.advance(25 * time.Hour)
	h.createKey("tokens:read")
	rep, err := h.app.Purge(ctx, false)
	require.NoError(t, err)
	require.Positive(t, rep.AuditEvents)
	f, err = os.Open(file)
	require.NoError(t, err)
	cps, err = audit.ReadCheckpoints(f, kid)
	f.Close()
	require.NoError(t, err)
	require.Len(t, cps, 3, "the pruning's anchor is written too")
	res, err = h.app.Store.VerifyAuditCheckpoints(ctx, store.DefaultWorkspaceID, cps, kid)
	require.NoError(t, err)
	require.True(t, res.OK, res.Reason)
	require.Positive(t, res.StartSeq)
	v := h.expect(h.do("GET", "/v1/audit/verify", reader, nil), 200, "")
	require.Equal(t, true, v.Body["ok"])
}

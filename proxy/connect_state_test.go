package proxy_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/proxy"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// countQueries counts every statement gorm runs on the harness's store from now on
// (queries, rows, raw SQL, creates, updates, deletes), whoever runs it.
func countQueries(t *testing.T, h *harness) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	count := func(*gorm.DB) { n.Add(1) }
	cb := h.app.Store.DB().Callback()
	for _, p := range []interface {
		Register(string, func(*gorm.DB)) error
	}{cb.Query(), cb.Row(), cb.Raw(), cb.Create(), cb.Update(), cb.Delete()} {
		require.NoError(t, p.Register("authpipe_test:count_queries", count))
	}
	return &n
}

// withState returns the callback URL cb with its state replaced.
func withState(cb *url.URL, state string) string {
	q := cb.Query()
	q.Set("state", state)
	u := *cb
	u.RawQuery = q.Encode()
	return u.String()
}

func stateKID(t *testing.T, state string) string {
	t.Helper()
	kid, err := oauthflow.StateKeyID(state)
	require.NoError(t, err)
	return kid
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

// refusedWithoutStore asserts that the callback with state is 400 invalid_state and that
// answering it ran no statement at all on the store.
func (f *flow) refusedWithoutStore(b *browser, queries *atomic.Int64, cb *url.URL, state string) {
	f.t.Helper()
	before := queries.Load()
	res, body := b.get(withState(cb, state))
	f.rejected(res, body, "invalid_state")
	require.Equal(f.t, before, queries.Load(), "a state that fails its MAC never reaches the database")
}

func TestForgedStatesNeverReachTheStore(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
			queries := countQueries(t, f.h)
			b := f.browser()
			_, connectURL := f.session(nil)
			cb := f.toCallback(b, connectURL) // loads the state key set
			good := cb.Query().Get("state")
			kid := stateKID(t, good)

			forged, _, err := oauthflow.NewState(kid, randomKey(t)) // the right kid, a guessed key
			require.NoError(t, err)
			unknownKid, _, err := oauthflow.NewState("pk_aaaaaaaaaaaaaaaaaaaaaaaaaa", randomKey(t))
			require.NoError(t, err)
			raw, err := base64.RawURLEncoding.DecodeString(good)
			require.NoError(t, err)
			tampered := append([]byte(nil), raw...)
			tampered[2+len(kid)] ^= 0x01 // one bit of the random part
			retagged := append([]byte(nil), raw...)
			retagged[len(retagged)-1] ^= 0x80 // one bit of the tag
			for name, state := range map[string]string{
				"forged, valid shape": forged,
				"unknown kid":         unknownKid,
				"truncated":           good[:len(good)-1],
				"truncated tag":       base64.RawURLEncoding.EncodeToString(raw[:len(raw)-16]),
				"tampered random":     base64.RawURLEncoding.EncodeToString(tampered),
				"tampered tag":        base64.RawURLEncoding.EncodeToString(retagged),
				"extended":            good + "A",
				"malformed":           "short",
				"too long":            good + good,
				"empty":               "",
				"kid only":            base64.RawURLEncoding.EncodeToString(raw[:2+len(kid)]),
				"right kid, zeros":    base64.RawURLEncoding.EncodeToString(append(append([]byte(nil), raw[:2+len(kid)]...), make([]byte, 64)...)),
			} {
				t.Run(name, func(t *testing.T) { f.refusedWithoutStore(b, queries, cb, state) })
			}

			// The counter does see the callback's lookup: a state correctly MAC'd with the
			// state key but never issued passes the MAC, is looked up, and is unknown.
			unissued, err := proxy.StateForTest(ctx, f.h.app.Server, kid)
			require.NoError(t, err)
			before := queries.Load()
			res, body := b.get(withState(cb, unissued))
			f.rejected(res, body, "invalid_state")
			require.Greater(t, queries.Load(), before, "an authentic state is looked up")

			// None of that touched the real flow: it completes, once.
			require.Zero(t, f.as.TokenCalls())
			f.connected(b, cb)
			res, body = b.get(cb.String())
			f.rejected(res, body, "invalid_state")
			require.EqualValues(t, 1, f.as.TokenCalls(), "a replayed state never reaches the token endpoint")
			require.Equal(t, 1, f.connections())
			f.noLeaks()
		})
	}
}

func TestStateKeyRotationAndStates(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
			queries := countQueries(t, f.h)

			// A flow started before a rotation completes after it, and cannot be replayed.
			b := f.browser()
			_, connectURL := f.session(nil)
			before := f.toCallback(b, connectURL)
			oldKid := stateKID(t, before.Query().Get("state"))
			newKid := rotateProxyKey(f.h, admin.PurposeState)
			require.Equal(t, store.ProxyKeyVerifyOnly, proxyKeyState(t, f.h, oldKid))
			f.connected(b, before)
			res, body := b.get(before.String())
			f.rejected(res, body, "invalid_state")

			// Until every replica has had time to load the new key, states stay on the old one.
			_, connectURL = f.session(nil)
			cb := f.toCallback(b, connectURL)
			require.Equal(t, oldKid, stateKID(t, cb.Query().Get("state")))
			f.connected(b, cb)
			// The new key verifies on the replica that made it already (the state passes
			// its MAC and is looked up; no session has it).
			early, err := proxy.StateForTest(ctx, f.h.app.Server, newKid)
			require.NoError(t, err)
			n := queries.Load()
			res, body = b.get(withState(cb, early))
			f.rejected(res, body, "invalid_state")
			require.Greater(t, queries.Load(), n)

			// After the publication delay new states carry the new kid.
			f.clock.advance(proxy.StateKeyPublishDelay + time.Second)
			_, connectURL = f.session(nil)
			cb = f.toCallback(b, connectURL)
			require.Equal(t, newKid, stateKID(t, cb.Query().Get("state")))
			f.connected(b, cb)

			// A flow started on the old key just before it stopped signing completes until
			// the old key retires; after that a state MAC'd with it is refused unread.
			f.clock.advance(16 * time.Minute)
			_, connectURL = f.session(nil)
			cb = f.toCallback(b, connectURL) // re-reads the set, which retires the old key
			require.Equal(t, store.ProxyKeyRetired, proxyKeyState(t, f.h, oldKid))
			retired, err := proxy.StateForTest(ctx, f.h.app.Server, oldKid)
			require.NoError(t, err)
			f.refusedWithoutStore(b, queries, cb, retired)
			f.connected(b, cb)
			f.noLeaks()
		})
	}
}

// TestStateKeyPublishedBeforeUse runs two replicas on one store: a state key made on one
// signs nothing until the other has re-read its key set, so a flow started on the first
// always completes on the second, which never reads the database for an unknown kid.
func TestStateKeyPublishedBeforeUse(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
			// The replica has its own key sets (and authentication cache).
			otherAdmin, err := admin.New(admin.Config{}, admin.Deps{Store: f.h.app.Store, Creds: f.h.app.Creds,
				Secrets: f.h.app.Secrets}, admin.WithClock(f.clock.now))
			require.NoError(t, err)
			cfg := proxy.Config{PublicURL: "http://127.0.0.1:8080", Dev: true,
				OutboundAllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
			other, err := proxy.New(cfg, proxy.Deps{Admin: otherAdmin, Store: f.h.app.Store, Creds: f.h.app.Creds,
				Secrets: f.h.app.Secrets, Audit: f.h.app.Audit, Providers: providersFor(t, f.h, cfg)},
				proxy.WithClock(f.clock.now))
			require.NoError(t, err)
			replica := httptest.NewServer(other.Handler())
			t.Cleanup(replica.Close)
			onReplica := func(cb *url.URL) *url.URL {
				r, err := url.Parse(replica.URL)
				require.NoError(t, err)
				u := *cb
				u.Host = r.Host
				return &u
			}

			b := f.browser()
			_, connectURL := f.session(nil)
			cb := f.toCallback(b, connectURL)
			// The replica loads its key set (a refused state does that, once per interval).
			res, body := b.get(withState(onReplica(cb), "short"))
			f.rejected(res, body, "invalid_state")

			newKid := rotateProxyKey(f.h, admin.PurposeState)
			_, connectURL = f.session(nil)
			started := f.toCallback(b, connectURL)
			require.NotEqual(t, newKid, stateKID(t, started.Query().Get("state")))
			f.connected(b, onReplica(started))
			f.connected(b, onReplica(cb)) // started before the rotation

			f.clock.advance(proxy.StateKeyPublishDelay + time.Second)
			_, connectURL = f.session(nil)
			cb = f.toCallback(b, connectURL)
			require.Equal(t, newKid, stateKID(t, cb.Query().Get("state")))
			f.connected(b, onReplica(cb))
			require.Equal(t, 3, f.connections())
		})
	}
}

// TestLegacyStates: a flow started before states carried a MAC (a bare 256-bit state)
// completes within the window after start, and such a state is refused unread after it.
func TestLegacyStates(t *testing.T) {
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	queries := countQueries(t, f.h)
	b := f.browser()
	id, connectURL := f.session(nil)
	cb := f.toCallback(b, connectURL)
	legacy, err := oauthflow.NewBrowserNonce() // the shape of a state before this version
	require.NoError(t, err)
	require.True(t, oauthflow.IsLegacyState(legacy))
	require.NoError(t, f.h.app.Store.DB().Model(&store.ConnectSession{}).Where("id = ?", id).
		Update("state_hash", oauthflow.HashState(legacy)).Error)
	f.mu.Lock()
	f.secrets = append(f.secrets, legacy)
	f.mu.Unlock()

	// An unknown one in the window is looked up (as before) and refused ...
	other, err := oauthflow.NewBrowserNonce()
	require.NoError(t, err)
	n := queries.Load()
	res, body := b.get(withState(cb, other))
	f.rejected(res, body, "invalid_state")
	require.Greater(t, queries.Load(), n)
	// ... the one the session has completes.
	u, err := url.Parse(withState(cb, legacy))
	require.NoError(t, err)
	f.connected(b, u)

	// After the window a bare state is refused without a query.
	f.clock.advance(16 * time.Minute)
	_, connectURL = f.session(nil)
	cb = f.toCallback(b, connectURL) // re-reads the key set after the clock jump
	f.refusedWithoutStore(b, queries, cb, other)
	f.connected(b, cb)
	f.noLeaks()
}

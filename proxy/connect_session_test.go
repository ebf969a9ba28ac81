package proxy_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/proxy"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

const idAlphabet = "abcdefghijklmnopqrstuvwxyz234567" // internal/ids

// connectUnread asserts that GET /v1/connect/{id} is 404 not_found and that answering it
// ran no statement at all on the store.
func (f *flow) connectUnread(b *browser, queries *atomic.Int64, connectURL, id string) {
	f.t.Helper()
	before := queries.Load()
	res, body := b.get(connectURLFor(connectURL, id))
	require.Equal(f.t, http.StatusNotFound, res.StatusCode, body)
	require.Contains(f.t, body, `"code":"not_found"`)
	require.Equal(f.t, before, queries.Load(), "a session id that fails its MAC never reaches the database")
}

// connectURLFor is connectURL with its session id replaced.
func connectURLFor(connectURL, id string) string {
	return connectURL[:strings.LastIndex(connectURL, "/")+1] + id
}

// encodeID writes raw as a session id (cs_ + the identifiers' base32).
func encodeID(raw []byte) string {
	out := make([]byte, ids.EncodedLen(len(raw)))
	ids.Encode(out, raw)
	return "cs_" + string(out)
}

func TestForgedSessionIDsNeverReachTheStore(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
			queries := countQueries(t, f.h)
			b := f.browser()
			id, connectURL := f.session(nil)
			require.Len(t, id, 3+52)
			require.True(t, ids.HasPrefix(id, ids.ConnectSession), "still an opaque prefixed id")

			raw, ok := ids.DecodeCanonical(strings.TrimPrefix(id, "cs_"))
			require.True(t, ok)
			flip := func(i int, bit byte) string {
				c := append([]byte(nil), raw...)
				c[i] ^= bit
				return encodeID(c)
			}
			random := make([]byte, len(raw))
			_, err := rand.Read(random)
			require.NoError(t, err)
			last := strings.IndexByte(idAlphabet, id[len(id)-1])
			nonCanonical := id[:len(id)-1] + string(idAlphabet[last^1]) // a spare trailing bit set: same bytes
			for name, forged := range map[string]string{
				"random, valid shape":        encodeID(random),
				"tampered random part":       flip(0, 0x01),
				"tampered key fingerprint":   flip(16, 0x01),
				"tampered tag":               flip(len(raw)-1, 0x80),
				"truncated":                  id[:len(id)-1],
				"extended":                   id + "a",
				"non-canonical encoding":     nonCanonical,
				"upper case":                 "cs_" + strings.ToUpper(id[3:]),
				"legacy shape, unknown kind": "cs_" + strings.Repeat("a", 27),
				"prefix only":                "cs_",
				"other prefix":               "ws_" + id[3:],
			} {
				t.Run(name, func(t *testing.T) { f.connectUnread(b, queries, connectURL, forged) })
			}

			// The counter does see the lookup: an id MAC'd with the state key but never
			// issued passes the MAC, is looked up, and is unknown.
			kid := sessionKid(t, f, id)
			unissued, err := proxy.SessionIDForTest(ctx, f.h.app.Server, kid)
			require.NoError(t, err)
			before := queries.Load()
			res, body := b.get(connectURLFor(connectURL, unissued))
			require.Equal(t, http.StatusNotFound, res.StatusCode, body)
			require.Greater(t, queries.Load(), before, "an authentic id is looked up")

			// And the real one starts the flow, which completes.
			f.connected(b, f.toCallback(b, connectURL))
			f.noLeaks()
		})
	}
}

// sessionKid finds which stored state key MAC'd id: the one SessionIDForTest reproduces
// the fingerprint of.
func sessionKid(t *testing.T, f *flow, id string) string {
	t.Helper()
	var keys []store.ProxyKey
	require.NoError(t, f.h.app.Store.DB().Where("purpose = ?", "connect_state").Find(&keys).Error)
	for _, k := range keys {
		made, err := proxy.SessionIDForTest(context.Background(), f.h.app.Server, k.ID)
		require.NoError(t, err)
		if made[3+26:3+32] == id[3+26:3+32] { // base32 characters 26..31 hold only fingerprint bits (of bytes 16..19)
			return k.ID
		}
	}
	t.Fatalf("no state key made %s", id)
	return ""
}

// A session made before a state-key rotation still starts after it; one made after the
// publication delay is MAC'd with the new key; once the old key retires, an id MAC'd with
// it is refused unread.
func TestSessionIDsAcrossStateKeyRotation(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
			queries := countQueries(t, f.h)
			b := f.browser()
			oldID, oldURL := f.session(nil)
			oldKid := sessionKid(t, f, oldID)
			newKid := rotateProxyKey(f.h, admin.PurposeState)
			f.connected(b, f.toCallback(b, oldURL))

			f.clock.advance(proxy.StateKeyPublishDelay + time.Second)
			newID, newURL := f.session(nil)
			require.Equal(t, newKid, sessionKid(t, f, newID))
			f.connected(b, f.toCallback(b, newURL))

			f.clock.advance(16 * time.Minute)
			_, url3 := f.session(nil) // re-reads the set, which retires the old key
			require.Equal(t, store.ProxyKeyRetired, proxyKeyState(t, f.h, oldKid))
			retired, err := proxy.SessionIDForTest(ctx, f.h.app.Server, oldKid)
			require.NoError(t, err)
			f.connectUnread(b, queries, url3, retired)
			f.connected(b, f.toCallback(b, url3))
			f.noLeaks()
		})
	}
}

// A session id made before ids carried a MAC (ids.New) still starts its flow for the
// legacy window after the replica started; after it, it is refused unread.
func TestLegacySessionIDs(t *testing.T) {
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	queries := countQueries(t, f.h)
	b := f.browser()
	id, connectURL := f.session(nil)
	legacy := ids.New(ids.ConnectSession)
	require.NoError(t, f.h.app.Store.DB().Model(&store.ConnectSession{}).Where("id = ?", id).Update("id", legacy).Error)
	legacyURL := connectURLFor(connectURL, legacy)
	f.connected(b, f.toCallback(b, legacyURL))

	f.clock.advance(16 * time.Minute)
	_, fresh := f.session(nil)
	f.connectUnread(b, queries, fresh, ids.New(ids.ConnectSession))
	f.connected(b, f.toCallback(b, fresh))
}

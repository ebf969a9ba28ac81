package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/webhooksig"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/proxy"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// rotateProxyKey rotates a purpose through the admin endpoint and returns the new kid.
func rotateProxyKey(h *harness, purpose string) string {
	h.t.Helper()
	r := h.expect(h.do("POST", "/v1/proxy-keys/rotate", bootstrapKey, map[string]any{"purpose": purpose}), 200, "")
	require.Equal(h.t, purpose, r.Body["purpose"])
	kid := r.Body["kid"].(string)
	require.True(h.t, strings.HasPrefix(kid, "pk_"), kid)
	return kid
}

func proxyKeyState(t *testing.T, h *harness, kid string) string {
	t.Helper()
	var pk store.ProxyKey
	require.NoError(t, h.app.Store.DB().Where("id = ?", kid).Take(&pk).Error)
	return pk.State
}

// sessionBindingKid returns the kid stored with a connect session's browser binding.
func sessionBindingKid(t *testing.T, h *harness, id string) string {
	t.Helper()
	var cs store.ConnectSession
	require.NoError(t, h.app.Store.DB().Where("id = ?", id).Take(&cs).Error)
	kid, _, ok := strings.Cut(string(cs.BrowserBinding), ":")
	require.True(t, ok)
	return kid
}

func TestStateKeyRotation(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})

			// A flow started before the rotation completes after it.
			before, connectURL := f.session(nil)
			b := f.browser()
			cb := f.toCallback(b, connectURL)
			oldKid := sessionBindingKid(t, f.h, before)
			newKid := rotateProxyKey(f.h, admin.PurposeState)
			require.NotEqual(t, oldKid, newKid)
			require.Equal(t, store.ProxyKeyVerifyOnly, proxyKeyState(t, f.h, oldKid))
			f.connected(b, cb)

			// A flow started after it is bound with the new key.
			after, connectURL := f.session(nil)
			b = f.browser()
			cb = f.toCallback(b, connectURL)
			require.Equal(t, newKid, sessionBindingKid(t, f.h, after))
			f.connected(b, cb)

			// After the flow lifetime the old key retires by itself.
			f.clock.advance(16 * time.Minute)
			id, connectURL := f.session(nil)
			b = f.browser()
			cb = f.toCallback(b, connectURL)
			require.Equal(t, store.ProxyKeyRetired, proxyKeyState(t, f.h, oldKid))

			// A binding correctly made with the retired key is refused (the key is picked
			// by its kid and no other key is tried) ...
			u, err := url.Parse(f.h.srv.URL)
			require.NoError(t, err)
			var nonce string
			for _, c := range b.c.Jar.Cookies(u) {
				if c.Name == "authpipe_flow" {
					nonce = c.Value
				}
			}
			require.NotEmpty(t, nonce)
			forged, err := proxy.ForgeFlowBindingForTest(ctx, f.h.app.Server, oldKid, id, nonce)
			require.NoError(t, err)
			require.NoError(t, f.h.app.Store.DB().Model(&store.ConnectSession{}).Where("id = ?", id).
				Update("browser_binding", forged).Error)
			res, body := b.get(cb.String())
			f.rejected(res, body, "invalid_state")

			// ... and the same binding made with the active key is accepted.
			good, err := proxy.ForgeFlowBindingForTest(ctx, f.h.app.Server, newKid, id, nonce)
			require.NoError(t, err)
			require.NoError(t, f.h.app.Store.DB().Model(&store.ConnectSession{}).Where("id = ?", id).
				Update("browser_binding", good).Error)
			f.connected(b, cb)

			// Audited with purpose and kid, never the key.
			evs, err := f.h.app.Store.ListAudit(ctx, store.DefaultWorkspaceID, "", 1000)
			require.NoError(t, err)
			var rotated int
			for _, ev := range evs {
				if ev.Type == admin.KeyRotated {
					rotated++
					require.JSONEq(t, `{"purpose":"state","kid":"`+newKid+`"}`, ev.Data)
				}
			}
			require.Equal(t, 1, rotated)
			f.noLeaks()
		})
	}
}

func TestAPIKeyHashKeyRotation(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			clock := &testClock{}
			h := newClockHarness(t, dialect, nil, clock)
			before := h.createKey("admin")
			list := func(key string) map[string]map[string]any {
				r := h.expect(h.do("GET", "/v1/api-keys", key, nil), 200, "")
				out := map[string]map[string]any{}
				for _, k := range r.Body["api_keys"].([]any) {
					m := k.(map[string]any)
					out[m["name"].(string)] = m
				}
				return out
			}
			keys := list(before)
			require.Equal(t, "pk_apikey_hash_1", keys["bootstrap"]["hash_key_id"])
			require.Equal(t, false, keys["bootstrap"]["hash_key_stale"])

			h.expect(h.do("POST", "/v1/proxy-keys/rotate", bootstrapKey, map[string]any{"purpose": "nope"}), 400, "invalid_request")
			kid := rotateProxyKey(h, admin.PurposeAPIKeyHash)
			// Keys issued before keep working; they show they are on an old hashing key.
			keys = list(before)
			require.Equal(t, true, keys["k"]["hash_key_stale"])
			require.Equal(t, "pk_apikey_hash_1", keys["k"]["hash_key_id"])
			h.expect(h.do("GET", "/v1/api-keys", bootstrapKey, nil), 200, "")

			// A new key is hashed with the new key.
			r := h.expect(h.do("POST", "/v1/api-keys", bootstrapKey, map[string]any{"name": "after", "scopes": []string{"admin"}}), 201, "")
			after := r.Body["key"].(string)
			keys = list(after)
			require.Equal(t, kid, keys["after"]["hash_key_id"])
			require.Equal(t, false, keys["after"]["hash_key_stale"])
			require.Equal(t, store.ProxyKeyVerifyOnly, proxyKeyState(t, h, "pk_apikey_hash_1"))

			// The hash is checked under the key its row names, and no other.
			setHashKey := func(id, kid string) {
				require.NoError(t, h.app.Store.DB().Model(&store.APIKey{}).Where("id = ?", id).Update("hash_key_id", kid).Error)
				clock.advance(time.Minute) // past the auth cache's TTL
			}
			setHashKey(keys["k"]["id"].(string), kid)
			h.expect(h.do("GET", "/v1/api-keys", before, nil), 401, "unauthorized")
			setHashKey(keys["k"]["id"].(string), "pk_apikey_hash_1")
			h.expect(h.do("GET", "/v1/api-keys", before, nil), 200, "")

			// The old hashing key retires once no unrevoked key is hashed with it.
			for _, name := range []string{"k", "bootstrap"} {
				h.expect(h.do("DELETE", "/v1/api-keys/"+keys[name]["id"].(string), after, nil), 204, "")
			}
			clock.advance(time.Minute) // past the key set's refresh interval
			h.expect(h.do("GET", "/v1/api-keys", after, nil), 200, "")
			require.Equal(t, store.ProxyKeyRetired, proxyKeyState(t, h, "pk_apikey_hash_1"))
			h.expect(h.do("GET", "/v1/api-keys", before, nil), 401, "unauthorized")
			h.expect(h.do("GET", "/v1/api-keys", after, nil), 200, "")

			h.expect(h.do("POST", "/v1/proxy-keys/rotate", after, map[string]any{"purpose": "state"}), 403, "forbidden")
		})
	}
}

func TestWebhookSecretRotation(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			clock := &testClock{}
			h := newClockHarness(t, dialect, nil, clock)
			var mu sync.Mutex
			var headers []string
			var bodies [][]byte
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				headers = append(headers, r.Header.Get(webhooksig.SignatureHeader))
				bodies = append(bodies, b)
				mu.Unlock()
			}))
			t.Cleanup(recv.Close)
			wh, err := refresher.NewWebhooks(refresher.WebhookConfig{}, h.app.Store, h.app.Creds, recv.Client(), clock.now, nil)
			require.NoError(t, err)
			deliver := func() (string, []byte) {
				t.Helper()
				require.NoError(t, h.app.Store.AppendEvents(ctx, audit.Event{WorkspaceID: store.DefaultWorkspaceID, At: clock.now(),
					Type: audit.ConnectionCreated, ConnectionID: "conn_x", Outcome: audit.Success}))
				n, err := wh.Run(ctx)
				require.NoError(t, err)
				require.Equal(t, 1, n)
				mu.Lock()
				defer mu.Unlock()
				return headers[len(headers)-1], bodies[len(bodies)-1]
			}
			h.expect(h.do("POST", "/v1/proxy-keys/rotate", bootstrapKey, map[string]any{"purpose": "webhook"}), 404, "not_found")
			r := h.expect(h.do("PUT", "/v1/webhooks", bootstrapKey, map[string]any{"url": recv.URL + "/hook"}), 200, "")
			oldSecret := []byte(r.Body["secret"].(string))

			hdr, body := deliver()
			require.Equal(t, 2, strings.Count(hdr, ",")+1, "one signature before a rotation: %s", hdr)
			require.NoError(t, webhooksig.Verify(oldSecret, hdr, body, clock.now(), time.Minute))

			r = h.expect(h.do("POST", "/v1/proxy-keys/rotate", bootstrapKey, map[string]any{"purpose": "webhook"}), 200, "")
			require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
			newSecret := []byte(r.Body["secret"].(string))
			require.Equal(t, webhooksig.KID(newSecret), r.Body["kid"])
			require.Equal(t, []any{webhooksig.KID(oldSecret)}, r.Body["verify_only"])

			// During the rotation window: both signatures, each verifiable by its kid.
			hdr, body = deliver()
			require.Contains(t, hdr, "v1="+webhooksig.KID(newSecret)+":")
			require.Contains(t, hdr, "v1="+webhooksig.KID(oldSecret)+":")
			require.NoError(t, webhooksig.Verify(newSecret, hdr, body, clock.now(), time.Minute))
			require.NoError(t, webhooksig.Verify(oldSecret, hdr, body, clock.now(), time.Minute))
			require.ErrorIs(t, webhooksig.Verify([]byte("whsec_someone-else"), hdr, body, clock.now(), time.Minute), webhooksig.ErrBadSignature)

			// After the window the old secret no longer signs.
			clock.advance(webhooksig.RetryWindow + time.Minute)
			hdr, body = deliver()
			require.NoError(t, webhooksig.Verify(newSecret, hdr, body, clock.now(), time.Minute))
			require.ErrorIs(t, webhooksig.Verify(oldSecret, hdr, body, clock.now(), time.Minute), webhooksig.ErrBadSignature)
			require.NotContains(t, hdr, webhooksig.KID(oldSecret))

			// Audited without the secret.
			evs, err := h.app.Store.ListAudit(ctx, store.DefaultWorkspaceID, "", 1000)
			require.NoError(t, err)
			var rotated int
			for _, ev := range evs {
				require.NotContains(t, ev.Data, string(newSecret))
				if ev.Type == admin.KeyRotated {
					rotated++
					require.JSONEq(t, `{"purpose":"webhook","kid":"`+webhooksig.KID(newSecret)+`","workspace_id":"`+
						store.DefaultWorkspaceID+`"}`, ev.Data)
				}
			}
			require.Equal(t, 1, rotated)
		})
	}
}

func TestCheckpointKeyRotationKeepsOldKeysPublished(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	r := h.expect(h.do("GET", "/v1/audit/checkpoint-keys", bootstrapKey, nil), 200, "")
	first := r.Body["keys"].([]any)
	require.Len(t, first, 1)
	oldKid := first[0].(map[string]any)["kid"].(string)

	r = h.expect(h.do("POST", "/v1/proxy-keys/rotate", bootstrapKey, map[string]any{"purpose": "checkpoint"}), 200, "")
	newKid := r.Body["checkpoint_kid"].(string)
	require.True(t, strings.HasPrefix(newKid, "ckp_"))
	require.NotEqual(t, oldKid, newKid)
	require.Equal(t, []any{"pk_audit_checkpoint_1"}, r.Body["verify_only"])

	r = h.expect(h.do("GET", "/v1/audit/checkpoint-keys", bootstrapKey, nil), 200, "")
	keys := r.Body["keys"].([]any)
	require.Len(t, keys, 2)
	require.Equal(t, newKid, keys[0].(map[string]any)["kid"])
	require.Equal(t, "active", keys[0].(map[string]any)["state"])
	require.Equal(t, oldKid, keys[1].(map[string]any)["kid"])
	require.Equal(t, "verify-only", keys[1].(map[string]any)["state"])

	sg, err := h.app.Admin.CheckpointKeys().Signer(context.Background())
	require.NoError(t, err)
	require.Equal(t, newKid, sg.KeyID(), "the new key signs")
	trusted, err := h.app.Admin.CheckpointKeys().TrustedKeyIDs(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{newKid, oldKid}, trusted)
}

// flowNonce returns the browser's flow cookie.
func flowNonce(t *testing.T, f *flow, b *browser) string {
	t.Helper()
	u, err := url.Parse(f.h.srv.URL)
	require.NoError(t, err)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "authpipe_flow" {
			return c.Value
		}
	}
	t.Fatal("no flow cookie")
	return ""
}

func TestLegacyFlowBindingStillCompletes(t *testing.T) {
	ctx := context.Background()
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	id, connectURL := f.session(nil)
	b := f.browser()
	cb := f.toCallback(b, connectURL)
	nonce := flowNonce(t, f, b)

	// A legacy binding for another nonce is refused ...
	wrong, err := proxy.LegacyFlowBindingForTest(ctx, f.h.app.Server, id, nonce+"x")
	require.NoError(t, err)
	require.Len(t, wrong, 32)
	require.NoError(t, f.h.app.Store.DB().Model(&store.ConnectSession{}).Where("id = ?", id).Update("browser_binding", wrong).Error)
	res, body := b.get(cb.String())
	f.rejected(res, body, "invalid_state")

	// ... the one a flow started before the upgrade stored completes.
	legacy, err := proxy.LegacyFlowBindingForTest(ctx, f.h.app.Server, id, nonce)
	require.NoError(t, err)
	require.NoError(t, f.h.app.Store.DB().Model(&store.ConnectSession{}).Where("id = ?", id).Update("browser_binding", legacy).Error)
	f.connected(b, cb)
}

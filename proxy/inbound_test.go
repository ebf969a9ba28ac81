package proxy_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/inbound"
	"github.com/authpipe/authpipe-proxy/internal/webhooksig"
	"github.com/authpipe/authpipe-proxy/refresher"
	authpipe "github.com/authpipe/authpipe-proxy/sdk/go"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// stripeSign signs body as Stripe documents it: "t=<unix>,v1=<hex HMAC-SHA256(secret, t.body)>".
func stripeSign(secret string, at time.Time, body string) string {
	t := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(t + "." + body))
	return "t=" + t + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

func postInbound(t *testing.T, h *harness, path, sig, body string) resp {
	t.Helper()
	req, err := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	res, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	if len(raw) > 0 && raw[0] == '{' {
		require.NoError(t, json.Unmarshal(raw, &out.Body))
	}
	return out
}

// A provider webhook is verified as the catalog declares (Stripe here; every scheme is
// covered in internal/webhookverify), refused when forged, tampered, stale, replayed on
// another replica, or signed with a retired secret, and relayed through the outbox to the
// workspace's endpoint in the proxy's own signed envelope (verified by internal/webhooksig
// and by the Go client's WebhookVerifier), from another instance after a
// restart. Both dialects.
func TestInboundWebhooks(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			h := newHarness(t, d, nil)
			ctx := t.Context()
			var mu sync.Mutex
			var got []*http.Request
			var bodies [][]byte
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				got, bodies = append(got, r), append(bodies, b)
				mu.Unlock()
			}))
			t.Cleanup(recv.Close)

			const secret, rotated = "whsec_stripe-original-0123456789", "whsec_stripe-rotated-0123456789"
			c := h.expect(h.do("POST", "/v1/connections", bootstrapKey, map[string]any{"provider": "stripe",
				"end_user_id": "u1", "api_key": "sk_test_x", "webhook_secret": secret}), 201, "")
			id := c.Body["id"].(string)
			require.Equal(t, "whse", c.Body["webhook_secret_prefix"])
			path := "/v1/inbound/stripe/" + id
			now := time.Now()
			body := `{"id":"evt_1","type":"invoice.paid"}`

			// A link scanner's GET consumes nothing.
			h.expect(h.do("GET", path, "", nil), 405, "method_not_allowed")

			// No endpoint yet: the provider is told to retry (409), nothing is remembered.
			h.expect(postInbound(t, h, path, stripeSign(secret, now, body), body), 409, "webhook_endpoint_missing")
			ep := h.expect(h.do("PUT", "/v1/webhooks", bootstrapKey, map[string]any{"url": recv.URL + "/hook"}), 200, "")
			appSecret := []byte(ep.Body["secret"].(string))

			h.expect(postInbound(t, h, path, stripeSign(secret, now, body), body), 202, "")
			h2 := h.restart() // a second replica on the same database
			h.expect(postInbound(t, h2, path, stripeSign(secret, now, body), body), 401, "invalid_signature")
			h.expect(postInbound(t, h, path, stripeSign(secret, now, body), body), 401, "invalid_signature")
			for name, r := range map[string]resp{
				"tampered":       postInbound(t, h, path, stripeSign(secret, now, body), strings.Replace(body, "paid", "void", 1)),
				"wrong secret":   postInbound(t, h, path, stripeSign("whsec_other", now, body), body),
				"stale":          postInbound(t, h, path, stripeSign(secret, now.Add(-10*time.Minute), `{"id":"evt_old"}`), `{"id":"evt_old"}`),
				"unsigned":       postInbound(t, h, path, "", body),
				"other provider": postInbound(t, h, "/v1/inbound/github/"+id, stripeSign(secret, now, `{"id":"evt_2"}`), `{"id":"evt_2"}`),
				"unknown conn":   postInbound(t, h, "/v1/inbound/stripe/conn_nope", stripeSign(secret, now, body), body),
			} {
				h.expect(r, 401, "invalid_signature")
				require.NotContains(t, r.Raw, secret, name)
			}

			// A provider-side rotation: both secrets pass until the previous one is removed.
			rv := h.expect(h.do("PUT", "/v1/connections/"+id+"/webhook-secret", bootstrapKey,
				map[string]any{"secret": rotated, "keep_previous": true}), 200, "")
			require.Equal(t, "whse", rv.Body["previous_webhook_secret_prefix"])
			h.expect(postInbound(t, h, path, stripeSign(secret, now, `{"id":"evt_3"}`), `{"id":"evt_3"}`), 202, "")
			h.expect(postInbound(t, h2, path, stripeSign(rotated, now, `{"id":"evt_4"}`), `{"id":"evt_4"}`), 202, "")
			h.expect(h.do("DELETE", "/v1/connections/"+id+"/webhook-secret/previous", bootstrapKey, nil), 200, "")
			h.expect(h.do("DELETE", "/v1/connections/"+id+"/webhook-secret/previous", bootstrapKey, nil), 404, "not_found")
			h.expect(postInbound(t, h, path, stripeSign(secret, now, `{"id":"evt_5"}`), `{"id":"evt_5"}`), 401, "invalid_signature")

			// Bodies at the limit: 1 MiB is verified and relayed, one byte more is 413.
			pad := func(n int) string {
				b := `{"id":"evt_big","pad":"`
				return b + strings.Repeat("a", n-len(b)-2) + `"}`
			}
			big := pad(1 << 20)
			require.Len(t, big, 1<<20)
			h.expect(postInbound(t, h, path, stripeSign(rotated, now, big), big), 202, "")
			h.expect(postInbound(t, h, path, stripeSign(rotated, now, pad(1<<20+1)), pad(1<<20+1)), 413, "payload_too_large")

			// The relay: four accepted deliveries, sent by the other instance's dispatcher
			// (the outbox is in the database), in the proxy's envelope.
			wh, err := refresher.NewWebhooks(refresher.WebhookConfig{}, h2.app.Store, h2.app.Creds, recv.Client(), nil, nil)
			require.NoError(t, err)
			n, err := wh.Run(ctx)
			require.NoError(t, err)
			require.Equal(t, 4, n)
			mu.Lock()
			defer mu.Unlock()
			seen := map[string]bool{}
			for i, r := range got {
				require.NoError(t, webhooksig.Verify(appSecret, r.Header.Get(webhooksig.SignatureHeader), bodies[i], time.Now(), 5*time.Minute))
				require.NoError(t, authpipe.WebhookVerifier{Secrets: []string{string(appSecret)}}.Verify(
					r.Header.Get(authpipe.SignatureHeader), bodies[i]), "the Go client's helper verifies the relay")
				var p refresher.WebhookPayload
				require.NoError(t, json.Unmarshal(bodies[i], &p))
				require.Equal(t, "provider.webhook", p.Type)
				require.Equal(t, "provider.webhook", r.Header.Get("Authpipe-Event-Type"))
				require.Equal(t, id, p.Data.ConnectionID)
				require.Equal(t, "stripe", p.Data.Provider)
				require.Contains(t, p.Data.Body, `"id":"`+p.Data.ProviderEventID+`"`)
				require.NotContains(t, string(bodies[i]), secret)
				seen[p.Data.ProviderEventID] = true
			}
			require.Equal(t, map[string]bool{"evt_1": true, "evt_3": true, "evt_4": true, "evt_big": true}, seen)

			// Audited: refusals with their reason only, the secret changes, the receptions.
			evs, err := h.app.Store.ListAudit(ctx, store.DefaultWorkspaceID, "", 1000)
			require.NoError(t, err)
			reasons := map[string]int{}
			types := map[string]int{}
			for _, ev := range evs {
				types[ev.Type]++
				require.NotContains(t, ev.Data, secret)
				require.NotContains(t, ev.Data, rotated)
				if ev.Type == inbound.EventRefused {
					var data map[string]string
					require.NoError(t, json.Unmarshal([]byte(ev.Data), &data))
					require.Equal(t, []string{"provider", "reason"}, sortedKeys(data))
					reasons[data["reason"]]++
				}
			}
			require.Equal(t, map[string]int{"replay": 2, "signature_mismatch": 3, "stale_timestamp": 1, "missing_signature": 1,
				"provider_mismatch": 1}, reasons)
			require.Equal(t, 4, types[inbound.EventReceived])
			require.Equal(t, 1, types[inbound.EventSecretSet])
			require.Equal(t, 1, types[inbound.EventSecretRemoved])

			m := h.do("GET", "/metrics", "", nil)
			require.Contains(t, m.Raw, `inbound_webhooks_total{outcome="replay",provider="stripe"} 1`)
			require.Contains(t, m.Raw, `inbound_webhooks_total{outcome="relayed",provider="stripe"}`)
		})
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

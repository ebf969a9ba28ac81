package proxy_test

import (
	"testing"
	"time"
)

// A provider-level (app) signing secret is shared by every connection of the provider: a
// delivery it signed for one connection cannot be replayed to another connection's URL
// (the replay record belongs to the provider configuration, not the connection).
func TestInboundSharedSecretDeliveryIsNotReplayedToAnotherConnection(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	const shared = "whsec_stripe-app-level-0123456789"
	h.expect(h.do("PUT", "/v1/providers/stripe", bootstrapKey, map[string]any{"template": "stripe"}), 200, "")
	h.expect(h.do("PUT", "/v1/providers/stripe/webhook-secret", bootstrapKey, map[string]any{"secret": shared}), 200, "")
	h.expect(h.do("PUT", "/v1/webhooks", bootstrapKey, map[string]any{"url": "http://127.0.0.1:9/hook"}), 200, "")
	var ids []string
	for _, u := range []string{"tenant-a", "tenant-b"} {
		c := h.expect(h.do("POST", "/v1/connections", bootstrapKey, map[string]any{"provider": "stripe",
			"end_user_id": u, "api_key": "sk_test_x"}), 201, "")
		ids = append(ids, c.Body["id"].(string))
	}
	body := `{"id":"evt_shared","type":"invoice.paid"}`
	sig := stripeSign(shared, time.Now(), body)
	h.expect(postInbound(t, h, "/v1/inbound/stripe/"+ids[0], sig, body), 202, "")
	h.expect(postInbound(t, h, "/v1/inbound/stripe/"+ids[1], sig, body), 401, "invalid_signature")
	h.expect(postInbound(t, h, "/v1/inbound/stripe/"+ids[0], sig, body), 401, "invalid_signature")
}

package proxy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// The token endpoint refreshes inside the lead window and inside min_validity, and only
// then; POST /refresh refreshes now; the webhook endpoint is configured by admins.
func TestTokenEndpointRefreshes(t *testing.T) {
	f := newFlow(t, store.SQLite, oauthtest.Options{AutoLogin: true})
	b := f.browser()
	_, connectURL := f.session(nil)
	id := f.connected(b, f.toCallback(b, connectURL))
	first := f.token(id)
	calls := f.as.TokenCalls()

	require.Equal(t, first, f.token(id), "valid and outside the lead window: served as stored")
	require.Equal(t, calls, f.as.TokenCalls(), "no provider call")

	for _, bad := range []string{"abc", "-1", "99999"} {
		f.h.expect(f.h.do("GET", "/v1/connections/"+id+"/token?min_validity="+bad, f.key, nil), 400, "invalid_request")
	}

	r := f.h.expect(f.h.do("GET", "/v1/connections/"+id+"/token?min_validity=3700", f.key, nil), 200, "")
	second := r.Body["access_token"].(string)
	require.NotEqual(t, first, second, "min_validity beyond the expiry forces a refresh")
	require.Equal(t, calls+1, f.as.TokenCalls())
	require.True(t, f.as.Active(context.Background(), second))

	f.clock.advance(55 * time.Minute) // inside the 10-minute lead window of a one-hour token
	third := f.token(id)
	require.NotEqual(t, second, third, "a token inside the lead window is refreshed before it is served")
	require.Equal(t, calls+2, f.as.TokenCalls())

	// A forced refresh is one per connection per AUTHPIPE_FORCED_REFRESH_INTERVAL (30s):
	// inside it, POST /refresh answers with the last refresh's result.
	f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/refresh", f.key, nil), 200, "")
	require.Equal(t, calls+2, f.as.TokenCalls(), "refreshed just now: no provider call")
	f.clock.advance(31 * time.Second)
	r = f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/refresh", f.key, nil), 200, "")
	require.Equal(t, "active", r.Body["status"])
	require.NotNil(t, r.Body["last_refreshed_at"])
	require.Equal(t, calls+3, f.as.TokenCalls())
	f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/refresh", f.key, nil), 200, "")
	require.Equal(t, calls+3, f.as.TokenCalls(), "inside the interval")
	readOnly := f.h.createKey("tokens:read")
	f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/refresh", readOnly, nil), 403, "forbidden")
	f.h.expect(f.h.do("POST", "/v1/connections/conn_unknown/refresh", f.key, nil), 404, "not_found")

	f.h.expect(f.h.do("PUT", "/v1/webhooks", f.key, map[string]any{"url": f.app.URL + "/hook"}), 403, "forbidden")
	f.h.expect(f.h.do("PUT", "/v1/webhooks", bootstrapKey, map[string]any{"url": "ftp://example.com/hook"}), 400, "unsafe_url")
	r = f.h.expect(f.h.do("PUT", "/v1/webhooks", bootstrapKey, map[string]any{"url": f.app.URL + "/hook"}), 200, "")
	require.True(t, strings.HasPrefix(r.Body["secret"].(string), "whsec_"))
	require.Equal(t, "Authpipe-Signature", r.Body["signature_header"])
	f.h.expect(f.h.do("DELETE", "/v1/webhooks", bootstrapKey, nil), 200, "")
	f.h.expect(f.h.do("DELETE", "/v1/webhooks", bootstrapKey, nil), 404, "not_found")
}

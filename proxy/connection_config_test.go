package proxy_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// TestConnectionConfigAndMetadata (both dialects): a custom api_key provider whose API base
// holds a {tenant} path segment. POST /v1/connections needs a valid connection_config
// (400 invalid_connection_config, nothing stored), shows it and the metadata in the views,
// the token endpoint returns the metadata, and forwarding goes to the connection's filled
// API base (its bound origin and path).
func TestConnectionConfigAndMetadata(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			h := newHarness(t, dialect, nil)
			up := newUpstream(t)
			writer := h.createKey("connections:write", "providers:write")
			reader := h.createKey("tokens:read")
			h.expect(h.do("PUT", "/v1/providers/tenanted", writer, map[string]any{
				"auth_mode": "api_key", "api_base_url": up.URL + "/{tenant}/api", "api_key_auth": "header",
				"api_key_header":    "X-Upstream-Key",
				"connection_config": []map[string]any{{"name": "tenant", "pattern": "[a-z0-9-]{1,20}"}},
			}), 200, "")
			h.expect(h.do("PUT", "/v1/providers/undeclared", writer, map[string]any{
				"auth_mode": "api_key", "api_base_url": up.URL + "/{tenant}/api", "api_key_auth": "header", "api_key_header": "X-K",
			}), 400, "invalid_request")

			for _, bad := range []map[string]any{nil, {"tenant": ".."}, {"tenant": "a/b"}, {"tenant": "ACME"}, {"other": "x"}, {"tenant": "acme", "x": "y"}} {
				body := map[string]any{"provider": "tenanted", "end_user_id": "u-1", "api_key": upstreamKey}
				if bad != nil {
					body["connection_config"] = bad
				}
				h.expect(h.do("POST", "/v1/connections", writer, body), 400, "invalid_connection_config")
			}
			list := h.expect(h.do("GET", "/v1/connections", writer, nil), 200, "")
			require.Empty(t, list.Body["connections"], "nothing half-written")

			c := h.expect(h.do("POST", "/v1/connections", writer, map[string]any{"provider": "tenanted", "end_user_id": "u-1",
				"api_key": upstreamKey, "connection_config": map[string]string{"tenant": "acme"},
				"metadata": map[string]string{"team_id": "T1"}}), 201, "")
			require.Equal(t, map[string]any{"tenant": "acme"}, c.Body["connection_config"])
			require.Equal(t, map[string]any{"team_id": "T1"}, c.Body["metadata"])
			id := c.Body["id"].(string)
			got := h.expect(h.do("GET", "/v1/connections/"+id, writer, nil), 200, "")
			require.Equal(t, map[string]any{"tenant": "acme"}, got.Body["connection_config"])

			tok := h.expect(h.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")
			require.Equal(t, map[string]any{"team_id": "T1"}, tok.Body["metadata"])

			hits := up.hits.Load()
			send(t, h.srv.URL, "GET", "/v1/proxy/"+id+"/things?x=1", bearerHdr(reader), nil)
			require.Equal(t, hits+1, up.hits.Load())
			require.Equal(t, "/acme/api/things", up.last(t).Path, "the connection's filled API base")
			require.Equal(t, upstreamKey, up.last(t).Header.Get("X-Upstream-Key"))

			// A connection without metadata: the token response has no metadata member.
			plain := h.expect(h.do("POST", "/v1/connections", writer, map[string]any{"provider": "stripe", "end_user_id": "u-2",
				"api_key": "sk_test_plain000000000000"}), 201, "")
			require.Equal(t, map[string]any{}, plain.Body["metadata"])
			raw := h.expect(h.do("GET", "/v1/connections/"+plain.Body["id"].(string)+"/token", reader, nil), 200, "")
			_, has := raw.Body["metadata"]
			require.False(t, has)
			b, _ := json.Marshal(raw.Body)
			require.NotContains(t, string(b), "connection_config")
		})
	}
}

package proxy_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// awkwardEndUsers are end user ids creation accepts (1–256 printable characters) that are
// easy to get wrong in a path.
var awkwardEndUsers = []string{
	"tenant/42", "/", "a//b", "trailing/", "50%off", "%2F", "with space", "ünïcødé-用户", "..", ".", "a/../b",
	"?q=1#frag", "semi;colon", `back\slash`, "plus+sign", strings.Repeat("x", 255) + "/",
}

// TestEndUserIDsInPaths: every id creation accepts is exportable and erasable as one
// percent-encoded path segment (API.md Connections).
func TestEndUserIDsInPaths(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			h := newHarness(t, dialect, nil)
			other := h.expect(h.do("POST", "/v1/connections", bootstrapKey, map[string]any{"provider": "stripe",
				"end_user_id": "tenant", "api_key": "sk_test_tenantOtherKey"}), 201, "").Body["id"].(string)
			for _, id := range awkwardEndUsers {
				conn := h.expect(h.do("POST", "/v1/connections", bootstrapKey, map[string]any{"provider": "stripe",
					"end_user_id": id, "api_key": "sk_test_awkwardEndUser"}), 201, "").Body["id"].(string)
				for _, seg := range []string{url.PathEscape(id), strings.ReplaceAll(url.PathEscape(id), ".", "%2E")} {
					exp := h.expect(h.do("GET", "/v1/end-users/"+seg+"/export", bootstrapKey, nil), 200, "")
					require.Equal(t, id, exp.Body["end_user_id"], seg)
					conns := exp.Body["connections"].([]any)
					require.Len(t, conns, 1, seg)
					require.Equal(t, conn, conns[0].(map[string]any)["id"], seg)
				}
				r := h.expect(h.do("DELETE", "/v1/end-users/"+url.PathEscape(id), bootstrapKey, nil), 200, "")
				require.EqualValues(t, 1, r.Body["deleted"], id)
				h.expect(h.do("GET", "/v1/connections/"+conn, bootstrapKey, nil), 404, "not_found")
			}
			h.expect(h.do("GET", "/v1/connections/"+other, bootstrapKey, nil), 200, "")
			long := strings.Repeat("é", 129) // 258 bytes: creation refuses it, and so do these
			h.expect(h.do("GET", "/v1/end-users/"+url.PathEscape(long)+"/export", bootstrapKey, nil), 400, "invalid_request")
			h.expect(h.do("DELETE", "/v1/end-users/%0A", bootstrapKey, nil), 400, "invalid_request")
		})
	}
}

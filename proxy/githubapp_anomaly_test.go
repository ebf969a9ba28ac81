package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/oauthflow/githubapptest"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// narrowedFrom reads connection id's token narrowed to everything the test installation
// grants, as key, from the client address from (X-Forwarded-For from a trusted proxy).
func narrowedFrom(t *testing.T, h *harness, key, id, from string) {
	t.Helper()
	req, err := http.NewRequest("GET", h.srv.URL+"/v1/connections/"+id+
		"/token?repositories=alpha,beta,gamma&permissions=contents:write,issues:write", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Forwarded-For", from)
	res, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	require.Equal(t, 200, res.StatusCode, "body: %s", raw)
}

// TestGitHubAppNarrowedReadsFeedAnomalyDetection: narrowed reads count for the anomaly
// detection exactly like plain reads (same key, connection and client) and keep their own
// token.narrowed events: a burst of narrowed reads of many connections by one key fires
// key_connections_burst once; a narrowed read from a new address after the key's warm-up
// fires new_client_address.
func TestGitHubAppNarrowedReadsFeedAnomalyDetection(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			h := newHarness(t, dialect, map[string]string{"AUTHPIPE_ANOMALY_WINDOW": "1s",
				"AUTHPIPE_ANOMALY_CLIENT_WARMUP": "1s", "AUTHPIPE_ANOMALY_KEY_CONNECTIONS": "5",
				"AUTHPIPE_TRUSTED_PROXIES": "127.0.0.0/8,::1/128"})
			h.anomaliesExpected = true
			gh := githubapptest.New(t, githubapptest.Options{})
			putGitHubApp(t, h, gh)
			writer := h.createKey("connections:write")
			var conns []string
			for i := range 6 {
				r := h.expect(h.do("POST", "/v1/connections", writer, map[string]any{"provider": "gh",
					"end_user_id": fmt.Sprintf("u%d", i), "installation_id": "1001"}), 201, "")
				conns = append(conns, r.Body["id"].(string))
			}
			newReader := func(name string) (key, id string) {
				r := h.expect(h.do("POST", "/v1/api-keys", bootstrapKey, map[string]any{"name": name,
					"scopes": []string{"tokens:read"}}), 201, "")
				return r.Body["key"].(string), r.Body["id"].(string)
			}
			moved, movedID := newReader("moved")
			burst, burstID := newReader("burst")

			// One key reads one connection from its usual address, past its warm-up; the
			// other reads every connection, narrowed, in one window (from one address).
			narrowedFrom(t, h, moved, conns[0], "198.51.100.7")
			for range 2 {
				for _, c := range conns {
					narrowedFrom(t, h, burst, c, "198.51.100.8")
				}
			}
			time.Sleep(2500 * time.Millisecond)
			// A narrowed read from a new address.
			narrowedFrom(t, h, moved, conns[0], "203.0.113.9")
			// The burst again in a later window: the cooldown holds.
			for _, c := range conns {
				narrowedFrom(t, h, burst, c, "198.51.100.8")
			}
			require.Eventually(t, func() bool { return len(securityAnomalies(t, h)) >= 2 }, 10*time.Second, 50*time.Millisecond)
			time.Sleep(2500 * time.Millisecond)
			byKind := map[string][]audit.Event{}
			for _, e := range securityAnomalies(t, h) {
				byKind[e.ErrorCode] = append(byKind[e.ErrorCode], e)
			}
			require.Len(t, byKind, 2, "%v", byKind)
			require.Len(t, byKind[audit.AnomalyKeyConnections], 1)
			require.Len(t, byKind[audit.AnomalyNewClientAddress], 1)
			var d map[string]string
			require.NoError(t, json.Unmarshal([]byte(byKind[audit.AnomalyKeyConnections][0].Data), &d))
			require.Equal(t, burstID, d["api_key_id"])
			require.Equal(t, "6", d["count"])
			require.NoError(t, json.Unmarshal([]byte(byKind[audit.AnomalyNewClientAddress][0].Data), &d))
			require.Equal(t, movedID, d["api_key_id"])
			// Each narrowed read is still its own token.narrowed event.
			require.Len(t, narrowedEvents(t, h), 6+12+1+1)
		})
	}
}

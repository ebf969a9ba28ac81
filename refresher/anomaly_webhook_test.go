package refresher_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/refresher"
)

// A security.anomaly audit event becomes webhook security.anomaly with the finding (kind,
// key id, counts, window), with or without a connection.
func TestSecurityAnomalyWebhook(t *testing.T) {
	typ, payload, ok := refresher.MapEvent(audit.Event{ID: "evt_1", WorkspaceID: "ws_1", At: time.Now(),
		Type: audit.SecurityAnomaly, Actor: audit.AnomalyActor, Outcome: audit.Failure, ErrorCode: audit.AnomalyKeyConnections,
		Data: `{"kind":"key_connections_burst","api_key_id":"apk_1","count":"3000","baseline":"3","window":"1m0s"}`})
	require.True(t, ok)
	require.Equal(t, refresher.EventSecurityAnomaly, typ)
	var p refresher.WebhookPayload
	require.NoError(t, json.Unmarshal([]byte(payload), &p))
	require.Equal(t, refresher.WebhookData{WorkspaceID: "ws_1", Anomaly: &refresher.WebhookAnomaly{
		Kind: audit.AnomalyKeyConnections, APIKeyID: "apk_1", Count: 3000, Baseline: 3, Window: "1m0s"}}, p.Data)

	typ, payload, ok = refresher.MapEvent(audit.Event{ID: "evt_2", WorkspaceID: "ws_1", At: time.Now(),
		Type: audit.SecurityAnomaly, Actor: audit.AnomalyActor, Outcome: audit.Failure, ErrorCode: audit.AnomalyRefreshStorm,
		ConnectionID: "conn_1", Data: `{"kind":"refresh_storm","provider":"google","count":"40","baseline":"0","window":"1m0s"}`})
	require.True(t, ok)
	require.Equal(t, refresher.EventSecurityAnomaly, typ)
	require.JSONEq(t, `{"workspace_id":"ws_1","connection_id":"conn_1","provider":"google",
		"anomaly":{"kind":"refresh_storm","count":40,"baseline":0,"window":"1m0s"}}`, string(mustData(t, payload)))
}

func mustData(t *testing.T, payload string) json.RawMessage {
	t.Helper()
	var p struct {
		Data json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(payload), &p))
	return p.Data
}

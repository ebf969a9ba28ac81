package refresher_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/refresher"
)

// A connection.expiring audit event becomes webhook connection.expiring with the refresh
// token's end and nothing else of the connection.
func TestExpiringWebhook(t *testing.T) {
	end := "2027-01-01T00:00:00Z"
	typ, payload, ok := refresher.MapEvent(audit.Event{ID: "evt_1", WorkspaceID: "ws_1", At: time.Now(),
		Type: audit.ConnectionExpiring, ConnectionID: "conn_1", Outcome: audit.Success,
		Data: `{"provider":"quickbooks","refresh_token_expires_at":"` + end + `"}`})
	require.True(t, ok)
	require.Equal(t, refresher.EventExpiring, typ)
	var p refresher.WebhookPayload
	require.NoError(t, json.Unmarshal([]byte(payload), &p))
	require.Equal(t, refresher.WebhookData{WorkspaceID: "ws_1", ConnectionID: "conn_1", Provider: "quickbooks",
		RefreshTokenExpiresAt: end}, p.Data)
}

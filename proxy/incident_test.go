package proxy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// auditTypes is the workspace's audit events by type. It stops the batcher (flushing the
// aggregated reads): call it last.
func auditTypes(t *testing.T, h *harness, ws string) map[string][]audit.Event {
	t.Helper()
	h.app.Audit.Stop(t.Context())
	evs, err := h.app.Store.ListAudit(context.Background(), ws, "", 100_000)
	require.NoError(t, err)
	out := map[string][]audit.Event{}
	for _, e := range evs {
		out[e.Type] = append(out[e.Type], e)
	}
	return out
}

func TestWorkspaceFreeze(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			h := newHarness(t, d, nil)
			writer := h.createKey("connections:write")
			reader := h.createKey("tokens:read")
			c := h.expect(h.do("POST", "/v1/connections", writer, map[string]any{
				"provider": "stripe", "end_user_id": "u1", "api_key": "sk_live_freezefreezefreeze",
			}), 201, "")
			id := c.Body["id"].(string)
			h.expect(h.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")

			// Only an admin of the workspace (or workspaces:write) freezes it.
			h.expect(h.do("POST", "/v1/workspaces/"+store.DefaultWorkspaceID+"/freeze", reader, nil), 403, "forbidden")
			other := h.expect(h.do("POST", "/v1/workspaces", bootstrapKey, map[string]any{"name": "other"}), 201, "")
			otherAdmin := other.Body["api_key"].(map[string]any)["key"].(string)
			h.expect(h.do("POST", "/v1/workspaces/"+store.DefaultWorkspaceID+"/freeze", otherAdmin, nil), 403, "forbidden")
			h.expect(h.do("POST", "/v1/workspaces/ws_nope/freeze", bootstrapKey, nil), 404, "not_found")

			ws := h.expect(h.do("POST", "/v1/workspaces/"+store.DefaultWorkspaceID+"/freeze", bootstrapKey, nil), 200, "")
			require.NotEmpty(t, ws.Body["frozen_at"])
			// The cached row is gone with the write: the very next read is refused.
			h.expect(h.do("GET", "/v1/connections/"+id+"/token", reader, nil), 423, "workspace_frozen")
			h.expect(h.do("GET", "/v1/proxy/"+id+"/v1/charges", reader, nil), 423, "workspace_frozen")
			// Metadata, administration and the other workspace go on.
			h.expect(h.do("GET", "/v1/connections/"+id, reader, nil), 200, "")
			oc := h.expect(h.do("POST", "/v1/connections", otherAdmin, map[string]any{
				"provider": "stripe", "end_user_id": "u2", "api_key": "sk_live_otherotherother",
			}), 201, "")
			h.expect(h.do("GET", "/v1/connections/"+oc.Body["id"].(string)+"/token", otherAdmin, nil), 200, "")

			ws = h.expect(h.do("POST", "/v1/workspaces/"+store.DefaultWorkspaceID+"/unfreeze", bootstrapKey, nil), 200, "")
			require.Nil(t, ws.Body["frozen_at"])
			h.expect(h.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")

			evs := auditTypes(t, h, store.DefaultWorkspaceID)
			require.Len(t, evs[audit.WorkspaceFrozen], 1)
			require.Len(t, evs[audit.WorkspaceUnfrozen], 1)
			refused := 0
			for _, e := range append(evs[audit.TokenRead], evs["proxy.request"]...) {
				if e.ErrorCode == "workspace_frozen" {
					refused++
				}
			}
			require.Equal(t, 2, refused, "the refused read and the refused forward are accounted")
		})
	}
}

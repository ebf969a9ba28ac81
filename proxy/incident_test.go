package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// incidentAuditTypes is the workspace's audit events by type. It stops the batcher (flushing the
// aggregated reads): call it last.
func incidentAuditTypes(t *testing.T, h *harness, ws string) map[string][]audit.Event {
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

			evs := incidentAuditTypes(t, h, store.DefaultWorkspaceID)
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

// POST /v1/incidents/rotate against the fosite provider: the token a key was served is
// replaced and revoked; the connection serves a fresh one.
func TestIncidentRotateAPI(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			f := newFlow(t, d, oauthtest.Options{AutoLogin: true})
			h := f.h
			id := f.connect("u1")
			k := h.expect(h.do("POST", "/v1/api-keys", bootstrapKey, map[string]any{"name": "app", "scopes": []string{"tokens:read"}}), 201, "")
			keyID, key := k.Body["id"].(string), k.Body["key"].(string)
			exposed := h.expect(h.do("GET", "/v1/connections/"+id+"/token", key, nil), 200, "").Body["access_token"].(string)
			require.Eventually(t, func() bool { // the aggregated read is sealed within its 1 s window
				evs, err := h.app.Store.ListAudit(context.Background(), store.DefaultWorkspaceID, "", 10_000)
				require.NoError(t, err)
				for _, e := range evs {
					if e.Type == audit.TokenRead && e.Actor == keyID {
						return true
					}
				}
				return false
			}, 10*time.Second, 50*time.Millisecond)

			h.expect(h.do("POST", "/v1/incidents/rotate", bootstrapKey, map[string]any{}), 400, "invalid_request")
			h.expect(h.do("POST", "/v1/incidents/rotate", bootstrapKey, map[string]any{"api_key_id": keyID, "since": "soon"}), 400, "invalid_request")
			h.expect(h.do("POST", "/v1/incidents/rotate", key, map[string]any{"api_key_id": keyID}), 403, "forbidden")
			dry := h.expect(h.do("POST", "/v1/incidents/rotate", bootstrapKey, map[string]any{"api_key_id": keyID, "since": "1h", "dry_run": true}), 200, "")
			require.EqualValues(t, 1, dry.Body["connections"])
			require.Nil(t, dry.Body["incident_id"])
			require.True(t, f.as.Active(context.Background(), exposed), "a dry run changes nothing")

			res := h.expect(h.do("POST", "/v1/incidents/rotate", bootstrapKey, map[string]any{"api_key_id": keyID, "since": "1h"}), 200, "")
			require.EqualValues(t, 1, res.Body["connections"])
			require.EqualValues(t, 1, res.Body["revoked"])
			require.EqualValues(t, 1, res.Body["refreshed"])
			require.Equal(t, []any{}, res.Body["not_revocable"])
			require.False(t, f.as.Active(context.Background(), exposed), "the exposed token is inactive at the provider")
			fresh := h.expect(h.do("GET", "/v1/connections/"+id+"/token", key, nil), 200, "").Body["access_token"].(string)
			require.NotEqual(t, exposed, fresh)
			require.True(t, f.as.Active(context.Background(), fresh))
			// Resuming a finished incident rotates nothing.
			again := h.expect(h.do("POST", "/v1/incidents/rotate", bootstrapKey, map[string]any{"incident_id": res.Body["incident_id"]}), 200, "")
			require.EqualValues(t, 1, again.Body["revoked"])
			require.Equal(t, fresh, h.expect(h.do("GET", "/v1/connections/"+id+"/token", key, nil), 200, "").Body["access_token"])
		})
	}
}

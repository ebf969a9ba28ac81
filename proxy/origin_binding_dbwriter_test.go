package proxy_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// A database writer edits a connection's credentials.access_origins (the binding the next
// refreshed or minted access token is sealed to) and the provider's api_base_url, both to
// a host of theirs. The refresh (or mint) is refused before the provider is asked — the
// stored access token no longer opens with the edited origins — with 409 origin_changed and
// a credential.binding_refused event; no token ever reaches the writer's host, neither by
// forwarding nor otherwise. OAuth refresh and client-credentials mint, both dialects.
func TestDBWriterCannotRebindTheNextAccessToken(t *testing.T) {
	for _, dialect := range []string{store.SQLite, store.Postgres} {
		t.Run(dialect+"/refresh", func(t *testing.T) {
			f := originFlow(t, dialect)
			id := f.connect("alice")
			dbWriterRebinds(t, f, "fosite", id)
		})
		t.Run(dialect+"/mint", func(t *testing.T) {
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
			srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{Clients: []oauthtest.MachineClient{{ID: "app", Secret: "app-secret"}}})
			f.h.expect(f.h.do("PUT", "/v1/providers/m2m", bootstrapKey, map[string]any{"display_name": "m2m",
				"auth_mode": "oauth2_client_credentials", "token_url": srv.TokenURL(), "api_base_url": srv.URL + "/api",
				"token_auth_method": "client_secret_basic", "default_scopes": []string{"read"}, "client_id": "app", "client_secret": "app-secret"}), 200, "")
			r := f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "m2m", "end_user_id": "u"}), 201, "")
			mints := srv.Mints()
			dbWriterRebinds(t, f, "m2m", r.Body["id"].(string))
			require.Equal(t, mints, srv.Mints(), "nothing was minted")
		})
	}
}

func dbWriterRebinds(t *testing.T, f *flow, provider, id string) {
	t.Helper()
	evil := newListener(t)
	origins, _ := json.Marshal([]string{evil.URL})
	db := f.h.app.Store.DB()
	require.NoError(t, db.Exec(`UPDATE credentials SET access_origins = ? WHERE connection_id = ?`, string(origins), id).Error)
	f.h.app.Store.InvalidateConnections()
	repoint(t, f.h, provider, map[string]string{"api_base_url": evil.URL})

	f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/refresh", f.key, nil), 409, "origin_changed")
	require.NotEmpty(t, refusals(t, f.h, id, "refresh"), "a credential.binding_refused event")
	fwd := f.h.do("GET", "/v1/proxy/"+id+"/x", f.key, nil)
	require.NotEqual(t, 200, fwd.Status)
	for _, v := range evil.views() {
		require.False(t, strings.Contains(v, "Authorization"), "a token reached the writer's host:\n%.300s", v)
	}
}

package proxy_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// auditTypes returns the types of the default workspace's audit events, oldest first.
func auditTypes(f *flow) []string {
	f.t.Helper()
	r := f.h.expect(f.h.do("GET", "/v1/audit?limit=1000", bootstrapKey, nil), 200, "")
	var out []string
	for _, e := range r.Body["events"].([]any) {
		out = append(out, e.(map[string]any)["type"].(string))
	}
	return out
}

// TestImportGrantObtainedDirectly: a grant the application got from the provider itself
// (not through the proxy) is imported, sealed and bound, refreshed through the proxy (the
// fosite provider rotates the refresh token: the imported one is retired there), and its
// new access token is read and works. Invalid imports write nothing.
func TestImportGrantObtainedDirectly(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true, RefreshTokenExpiresIn: 30 * 24 * 3600})
			grant := f.as.Grant(t, f.callback, "read")
			f.sentinel(grant.RefreshToken)
			exp := grant.Expiry.UTC().Format(time.RFC3339)
			line := map[string]any{"provider": "fosite", "end_user_id": "imported-user", "external_id": "src-42",
				"oauth2": map[string]any{"access_token": grant.AccessToken, "refresh_token": grant.RefreshToken,
					"expires_at": exp, "scopes": []string{"read"}, "token_type": "Bearer"}}

			// All or nothing: every bad field reported, nothing written.
			bad := f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "nope", "end_user_id": "",
				"oauth2": map[string]any{"access_token": "", "token_type": "mac", "scopes": []string{"a b"}}}), 400, "invalid_request")
			require.Len(t, bad.Body["errors"], 5, bad.Raw)
			require.NotContains(t, bad.Raw, grant.AccessToken)
			f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "fosite", "end_user_id": "u",
				"oauth2": map[string]any{"access_token": "x", "expires_at": "2001-01-01T00:00:00Z"}}), 400, "invalid_request")
			f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "fosite", "end_user_id": "u",
				"api_key": "k", "oauth2": map[string]any{"access_token": "x"}}), 400, "invalid_request")
			require.Zero(t, f.connections())

			r := f.h.expect(f.h.do("POST", "/v1/connections", f.key, line), 201, "")
			id := r.Body["id"].(string)
			require.Equal(t, "oauth2", r.Body["auth_mode"])
			require.Equal(t, "active", r.Body["status"])
			require.Equal(t, "src-42", r.Body["external_id"])
			require.Equal(t, []any{"read"}, r.Body["scopes"])
			require.Equal(t, exp, r.Body["expires_at"])
			require.NotContains(t, r.Raw, grant.AccessToken)
			// Imported again (a resumed import): refused, still one connection.
			dup := f.h.expect(f.h.do("POST", "/v1/connections", f.key, line), 409, "already_imported")
			require.Contains(t, dup.Raw, id)
			require.Equal(t, 1, f.connections())
			access, refresh := f.storedTokens(id) // sealed and bound: opens with the provider's origins
			require.Equal(t, grant.AccessToken, access)
			require.Equal(t, grant.RefreshToken, refresh)

			// Refreshed through the proxy like any other connection.
			r = f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/refresh", f.key, nil), 200, "")
			require.NotEmpty(t, r.Body["last_refreshed_at"])
			require.NotEmpty(t, r.Body["refresh_token_expires_at"], "the provider's refresh_token_expires_in is kept")
			rtExp, err := time.Parse(time.RFC3339, r.Body["refresh_token_expires_at"].(string))
			require.NoError(t, err)
			require.WithinDuration(t, time.Now().Add(30*24*time.Hour), rtExp, time.Hour)
			require.False(t, f.as.RefreshActive(ctx, grant.RefreshToken), "the provider rotated the imported refresh token")
			_, rotated := f.storedTokens(id)
			require.NotEqual(t, grant.RefreshToken, rotated)
			require.True(t, f.as.RefreshActive(ctx, rotated), "the rotated refresh token is the one stored")
			tok := f.token(id)
			require.NotEqual(t, grant.AccessToken, tok)
			require.Equal(t, http.StatusOK, f.apiCall(tok))

			require.Contains(t, auditTypes(f), "connection.imported")
			f.noLeaks()
		})
	}
}

// TestClientSecretRotation: during an OAuth app's secret rotation the provider holds a
// next client secret (views show its prefix only); once the app's secret changed at the
// provider, a refresh answered invalid_client is made again with the next secret and
// succeeds; an admin promotes it (or drops it); neither secret reaches a log or a body.
func TestClientSecretRotation(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
			const next = "next-app-secret-SENTINEL-0123456789"
			f.sentinel(next, clientSecret)
			grant := f.as.Grant(t, f.callback, "read")
			r := f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "fosite", "end_user_id": "u",
				"oauth2": map[string]any{"access_token": grant.AccessToken, "refresh_token": grant.RefreshToken,
					"expires_at": grant.Expiry.UTC().Format(time.RFC3339), "scopes": []string{"read"}}}), 201, "")
			id := r.Body["id"].(string)

			// No next secret yet: drop and promote are 409; a providers:write key cannot.
			f.h.expect(f.h.do("POST", "/v1/providers/fosite/client-secret/promote", bootstrapKey, nil), 409, "no_next_client_secret")
			writer := f.h.createKey("providers:write")
			f.h.expect(f.h.do("POST", "/v1/providers/fosite/client-secret/promote", writer, nil), 403, "forbidden")

			putNext := map[string]any{
				"display_name": "Fosite", "auth_mode": "oauth2", "client_id": f.as.ClientID(), "client_secret_next": next,
				"scopes": []string{"read"}, "callback_urls": []string{f.callback}, "return_urls": []string{f.ret},
				"authorization_url": f.as.AuthorizationURL(), "token_url": f.as.TokenURL(), "revocation_url": f.as.RevocationURL(),
				"issuer": f.as.Issuer(), "token_auth_method": "client_secret_basic"}
			put := f.h.expect(f.h.do("PUT", "/v1/providers/fosite", writer, putNext), 200, "")
			require.Equal(t, true, put.Body["client_secret_next_set"])
			require.Equal(t, next[:4], put.Body["client_secret_next_prefix"])
			require.Equal(t, clientSecret[:4], put.Body["client_secret_prefix"], "the current one stays")

			// The app's secret is rotated at the provider: the current one gets invalid_client.
			f.as.SetClientSecret(next)
			f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/refresh", f.key, nil), 200, "")
			require.Equal(t, http.StatusOK, f.apiCall(f.token(id)))

			v := f.h.expect(f.h.do("POST", "/v1/providers/fosite/client-secret/promote", bootstrapKey, nil), 200, "")
			require.Equal(t, next[:4], v.Body["client_secret_prefix"])
			require.Nil(t, v.Body["client_secret_next_set"])
			f.h.expect(f.h.do("DELETE", "/v1/providers/fosite/client-secret/next", bootstrapKey, nil), 409, "no_next_client_secret")
			putNext["client_secret_next"] = "abandoned-SENTINEL-secret-value"
			f.sentinel("abandoned-SENTINEL-secret-value")
			require.Equal(t, true, f.h.expect(f.h.do("PUT", "/v1/providers/fosite", writer, putNext), 200, "").Body["client_secret_next_set"])
			v = f.h.expect(f.h.do("DELETE", "/v1/providers/fosite/client-secret/next", bootstrapKey, nil), 200, "")
			require.Nil(t, v.Body["client_secret_next_set"])
			require.Equal(t, next[:4], v.Body["client_secret_prefix"])

			types := auditTypes(f)
			require.Contains(t, types, "provider.client_secret_next_set")
			require.Contains(t, types, "provider.client_secret_promoted")
			require.Contains(t, types, "provider.client_secret_next_dropped")
			f.noLeaks()
		})
	}
}

// TestRefreshTokenLifetime: a provider that lapses idle refresh tokens
// (refresh_token_idle_ttl) gets keep-alive refreshes before the idle end even though the
// access token lives longer; the refresh token's end the provider sends (Intuit's
// x_refresh_token_expires_in here) is kept and shown; webhook connection.expiring is
// queued once per connection per expiry when that end is within the lead.
func TestRefreshTokenLifetime(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true, AccessTokenLifespan: 24 * time.Hour,
				RefreshTokenExpiresIn: 3 * 24 * 3600, RefreshTokenExpiresField: "x_refresh_token_expires_in"})
			f.h.expect(f.h.do("PUT", "/v1/providers/fosite", bootstrapKey, map[string]any{
				"display_name": "Fosite", "auth_mode": "oauth2", "client_id": f.as.ClientID(),
				"scopes": []string{"read"}, "callback_urls": []string{f.callback}, "return_urls": []string{f.ret},
				"authorization_url": f.as.AuthorizationURL(), "token_url": f.as.TokenURL(), "revocation_url": f.as.RevocationURL(),
				"issuer": f.as.Issuer(), "token_auth_method": "client_secret_basic", "refresh_token_idle_ttl": 3600,
			}), 200, "")
			grant := f.as.Grant(t, f.callback, "read")
			r := f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "fosite", "end_user_id": "u",
				"oauth2": map[string]any{"access_token": grant.AccessToken, "refresh_token": grant.RefreshToken,
					"expires_at": grant.Expiry.UTC().Format(time.RFC3339)}}), 201, "")
			id := r.Body["id"].(string)
			require.Nil(t, r.Body["refresh_token_expires_at"], "not known yet")
			conn, err := f.h.app.Store.Connection(ctx, store.DefaultWorkspaceID, id)
			require.NoError(t, err)
			require.WithinDuration(t, f.clock.now().Add(45*time.Minute), *conn.NextRefreshAt, time.Minute,
				"a keep-alive at three quarters of the idle TTL, long before the access token expires")

			f.clock.advance(20 * time.Minute)
			_, err = f.h.app.Refresher.Sweep(ctx)
			require.NoError(t, err)
			require.Nil(t, f.h.expect(f.h.do("GET", "/v1/connections/"+id, f.key, nil), 200, "").Body["last_refreshed_at"], "not due yet")

			f.clock.advance(20 * time.Minute) // inside the lead of the keep-alive
			for range 2 {
				_, err = f.h.app.Refresher.Sweep(ctx)
				require.NoError(t, err)
			}
			v := f.h.expect(f.h.do("GET", "/v1/connections/"+id, f.key, nil), 200, "").Body
			require.NotNil(t, v["last_refreshed_at"], "refreshed to keep the refresh token alive")
			end, err := time.Parse(time.RFC3339, v["refresh_token_expires_at"].(string))
			require.NoError(t, err)
			require.WithinDuration(t, f.clock.now().Add(72*time.Hour), end, time.Minute, "x_refresh_token_expires_in kept")
			expiring := 0
			for _, typ := range auditTypes(f) {
				if typ == "connection.expiring" {
					expiring++
				}
			}
			require.Equal(t, 1, expiring, "the end is within the 7-day lead: notified once however often the sweep runs")
		})
	}
}

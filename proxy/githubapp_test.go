package proxy_test

import (
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/githubapptest"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// putGitHubApp configures provider "gh": a github_app at the test server, the app's
// private key as client secret, the App ID as client id.
func putGitHubApp(t *testing.T, h *harness, gh *githubapptest.Server) {
	t.Helper()
	h.expect(h.do("PUT", "/v1/providers/gh", bootstrapKey, map[string]any{
		"display_name": "GitHub App (test)", "auth_mode": "github_app",
		"token_url": gh.URL + "/app/installations/{installation_id}/access_tokens", "api_base_url": gh.URL,
		"connection_config": []map[string]any{{"name": "installation_id", "pattern": "^[0-9]{1,20}$"}},
		"client_id":         gh.AppID(), "client_secret": gh.PrivateKeyPEM(),
	}), 200, "")
}

// narrowedEvents are the workspace's token.narrowed events as GET /v1/audit shows them.
func narrowedEvents(t *testing.T, h *harness) []map[string]any {
	t.Helper()
	r := h.expect(h.do("GET", "/v1/audit?limit=1000", bootstrapKey, nil), 200, "")
	var out []map[string]any
	for _, e := range r.Body["events"].([]any) {
		if ev := e.(map[string]any); ev["type"] == "token.narrowed" {
			out = append(out, ev)
		}
	}
	return out
}

// TestGitHubAppConnections drives a GitHub App installation through the API against a
// protocol-faithful installation token endpoint (githubapptest: the app JWT verified with
// the app's public key): creation mints once; reads are served from the sealed cache; a
// narrowed read returns a token limited as asked (the server's record proves it), minted
// for that read alone and audited as token.narrowed with the narrowing; malformed
// narrowing is 400 and one beyond the installation 422; narrowing a non-github_app
// connection is 400; disconnecting revokes the cached token at GitHub; the app's key
// rejected makes the connection needs_reauth.
func TestGitHubAppConnections(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			h := newHarness(t, dialect, nil)
			gh := githubapptest.New(t, githubapptest.Options{})
			// The app's key is checked when it is configured: not a PEM RSA key, or no
			// client id, is 400 and nothing is stored.
			appBody := func(id, secret string) map[string]any {
				return map[string]any{"auth_mode": "github_app", "api_base_url": gh.URL,
					"token_url":         gh.URL + "/app/installations/{installation_id}/access_tokens",
					"connection_config": []map[string]any{{"name": "installation_id", "pattern": "^[0-9]{1,20}$"}},
					"client_id":         id, "client_secret": secret}
			}
			badKey := h.expect(h.do("PUT", "/v1/providers/gh", bootstrapKey, appBody(gh.AppID(), "not-a-KEY-s3cr3t")), 400, "invalid_request")
			require.NotContains(t, badKey.Raw, "not-a-KEY-s3cr3t")
			h.expect(h.do("PUT", "/v1/providers/gh", bootstrapKey, appBody("", gh.PrivateKeyPEM())), 400, "invalid_request")
			h.expect(h.do("GET", "/v1/providers/gh", bootstrapKey, nil), 404, "not_found")
			putGitHubApp(t, h, gh)
			view := h.expect(h.do("GET", "/v1/providers/gh", bootstrapKey, nil), 200, "")
			require.Equal(t, true, view.Body["client_secret_set"])
			require.NotContains(t, view.Raw, "PRIVATE KEY")
			key := h.createKey("connections:write", "tokens:read")

			// Creation: a bad installation id is refused before anything is stored.
			h.expect(h.do("POST", "/v1/connections", key, map[string]any{"provider": "gh", "end_user_id": "u",
				"installation_id": "12ab"}), 400, "invalid_connection_config")
			bad := h.expect(h.do("POST", "/v1/connections", key, map[string]any{"provider": "gh", "end_user_id": "u",
				"installation_id": "9999"}), 400, "invalid_credential")
			require.Contains(t, bad.Body["detail"], "invalid_grant") // GitHub's 404: no such installation
			require.Zero(t, gh.Mints())

			r := h.expect(h.do("POST", "/v1/connections", key, map[string]any{"provider": "gh", "end_user_id": "u",
				"installation_id": "1001"}), 201, "")
			id := r.Body["id"].(string)
			require.Equal(t, "github_app", r.Body["auth_mode"])
			require.Equal(t, map[string]any{"installation_id": "1001"}, r.Body["connection_config"])
			require.EqualValues(t, 1, gh.Mints())
			cached := gh.Last()

			// Reads are served from the sealed cache: no further mint.
			for range 3 {
				tok := h.expect(h.do("GET", "/v1/connections/"+id+"/token", key, nil), 200, "")
				require.Equal(t, "github_app", tok.Body["credential_type"])
				require.Equal(t, cached, tok.Body["access_token"])
				require.Equal(t, "Bearer", tok.Body["token_type"])
				require.NotEmpty(t, tok.Body["expires_at"])
				require.Equal(t, []any{"contents:write", "issues:write", "metadata:read", "pull_requests:read"}, tok.Body["scopes"])
			}
			require.EqualValues(t, 1, gh.Mints())

			// A narrowed read: a token for this read only, limited as asked.
			q := url.Values{"repositories": {"beta,alpha"}, "permissions": {"contents:read,issues:write"}}
			n := h.expect(h.do("GET", "/v1/connections/"+id+"/token?"+q.Encode(), key, nil), 200, "")
			narrowed := n.Body["access_token"].(string)
			require.NotEqual(t, cached, narrowed)
			require.Equal(t, "github_app", n.Body["credential_type"])
			require.Equal(t, []any{"contents:read", "issues:write", "repository:alpha", "repository:beta"}, n.Body["scopes"])
			exp, err := time.Parse(time.RFC3339, n.Body["expires_at"].(string))
			require.NoError(t, err)
			require.WithinDuration(t, time.Now().Add(time.Hour), exp, time.Minute)
			rec, ok := gh.Token(narrowed)
			require.True(t, ok)
			require.True(t, rec.Narrowed)
			require.Equal(t, []string{"alpha", "beta"}, rec.Repositories)
			require.Equal(t, map[string]string{"contents": "read", "issues": "write"}, rec.Permissions)
			require.EqualValues(t, 2, gh.Mints())
			// Again: minted again, never cached; the plain read still serves the cached token.
			n2 := h.expect(h.do("GET", "/v1/connections/"+id+"/token?"+q.Encode(), key, nil), 200, "")
			require.NotEqual(t, narrowed, n2.Body["access_token"])
			require.EqualValues(t, 3, gh.Mints())
			plain := h.expect(h.do("GET", "/v1/connections/"+id+"/token", key, nil), 200, "")
			require.Equal(t, cached, plain.Body["access_token"])

			evs := narrowedEvents(t, h)
			require.Len(t, evs, 2)
			require.Equal(t, id, evs[0]["connection_id"])
			require.Equal(t, "success", evs[0]["outcome"])
			require.NotEqual(t, bootstrapKey, evs[0]["actor"])
			require.Equal(t, map[string]any{"repositories": []any{"alpha", "beta"}, "permissions": []any{"contents:read", "issues:write"},
				"granted":    []any{"contents:read", "issues:write", "repository:alpha", "repository:beta"},
				"expires_at": exp.UTC().Format(time.RFC3339)}, evs[0]["narrowing"])

			// Malformed narrowing: 400, nothing minted.
			for _, bad := range []string{"repositories=octo/alpha", "repositories=", "repositories=a,,b",
				"permissions=contents:owner", "permissions=contents", "permissions=contents:read,contents:write"} {
				h.expect(h.do("GET", "/v1/connections/"+id+"/token?"+bad, key, nil), 400, "invalid_request")
			}
			require.EqualValues(t, 3, gh.Mints())
			// Beyond the installation: GitHub's 422, narrowing_refused, audited as a failure.
			h.expect(h.do("GET", "/v1/connections/"+id+"/token?repositories=delta", key, nil), 422, "narrowing_refused")
			h.expect(h.do("GET", "/v1/connections/"+id+"/token?permissions=metadata:write", key, nil), 422, "narrowing_refused")
			evs = narrowedEvents(t, h)
			require.Len(t, evs, 4)
			require.Equal(t, "failure", evs[3]["outcome"])
			require.Equal(t, "narrowing_refused", evs[3]["error_code"])

			// Narrowing another mode's connection: 400.
			other := h.expect(h.do("POST", "/v1/connections", key, map[string]any{"provider": "stripe", "end_user_id": "u",
				"api_key": "sk_test_githubapp_narrowing"}), 201, "")
			h.expect(h.do("GET", "/v1/connections/"+other.Body["id"].(string)+"/token?repositories=alpha", key, nil), 400, "invalid_request")

			// The cached token works through the forwarding proxy (every repository).
			fwd := h.do("GET", "/v1/proxy/"+id+"/installation/repositories", key, nil)
			require.Equal(t, 200, fwd.Status, fwd.Raw)
			require.EqualValues(t, 3, fwd.Body["total_count"])

			// Disconnect revokes the cached token at GitHub (DELETE /installation/token).
			d := h.expect(h.do("DELETE", "/v1/connections/"+id, key, nil), 200, "")
			require.Equal(t, "disconnected", d.Body["status"])
			rec, _ = gh.Token(cached)
			require.True(t, rec.Revoked)
			require.EqualValues(t, 1, gh.Revocations())
			h.expect(h.do("GET", "/v1/connections/"+id+"/token?repositories=alpha", key, nil), 410, "disconnected")

			// The app's key rejected at GitHub (deleted there): the next mint is refused
			// with 401 and the connection needs re-authorization.
			r = h.expect(h.do("POST", "/v1/connections", key, map[string]any{"provider": "gh", "end_user_id": "u2",
				"installation_id": "1001"}), 201, "")
			id2 := r.Body["id"].(string)
			gh.RotateKey(t)
			h.expect(h.do("GET", "/v1/connections/"+id2+"/token?repositories=alpha", key, nil), 409, "needs_reauth")
			h.expect(h.do("POST", "/v1/connections/"+id2+"/refresh", key, nil), 409, "needs_reauth")
			h.expect(h.do("GET", "/v1/connections/"+id2+"/token", key, nil), 409, "needs_reauth")
			got := h.expect(h.do("GET", "/v1/connections/"+id2, key, nil), 200, "")
			require.Equal(t, "needs_reauth", got.Body["status"])
		})
	}
}

// TestGitHubAppMintOnceAcrossReplicas: two replicas on one database read a github_app
// connection whose token is inside the lead window at the same moment: GitHub is asked
// once, and every read gets that one new token.
func TestGitHubAppMintOnceAcrossReplicas(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			h := newHarness(t, dialect, nil)
			h2 := h.restart()
			gh := githubapptest.New(t, githubapptest.Options{})
			putGitHubApp(t, h, gh)
			key := h.createKey("connections:write", "tokens:read")
			gh.SetTokenLifetime(5 * time.Minute) // inside the 10-minute lead window at once
			r := h.expect(h.do("POST", "/v1/connections", key, map[string]any{"provider": "gh", "end_user_id": "u",
				"installation_id": "1001"}), 201, "")
			id := r.Body["id"].(string)
			first := gh.Last()
			require.EqualValues(t, 1, gh.Mints())
			gh.SetTokenLifetime(time.Hour)
			gh.SetDelay(300 * time.Millisecond) // the mint is in flight while the others ask

			var wg sync.WaitGroup
			got := make([]string, 8)
			for i := range got {
				wg.Add(1)
				go func() {
					defer wg.Done()
					srv := []*harness{h, h2}[i%2]
					res := srv.do("GET", "/v1/connections/"+id+"/token", key, nil)
					if res.Status == 200 {
						got[i] = res.Body["access_token"].(string)
					}
				}()
			}
			wg.Wait()
			require.EqualValues(t, 2, gh.Mints(), "one mint for both replicas")
			for i, tok := range got {
				require.Equal(t, gh.Last(), tok, "read %d", i)
				require.NotEqual(t, first, tok)
			}
		})
	}
}

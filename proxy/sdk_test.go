package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/webhooksig"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	authpipe "github.com/authpipe/authpipe-proxy/sdk/go"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// The Go client (sdk/go) against the real server and the fosite provider: an OAuth token
// through TokenSource (shared by concurrent callers, reused, refreshed by the proxy when
// asked for more validity), forwarding through Transport (the credential injected by the
// proxy, never seen by the caller), typed problems, pagination, DPoP-bound keys, and the
// server's webhook signatures verified by the client's verifier.
func TestGoClientAgainstTheServer(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFlowEnv(t, dialect, oauthtest.Options{AutoLogin: true}, map[string]string{"AUTHPIPE_PUBLIC_URL": "self"})
			_, connectURL := f.session(nil)
			b := f.browser()
			id := f.connected(b, f.toCallback(b, connectURL))
			ctx := context.Background()

			c, err := authpipe.New(f.h.srv.URL, authpipe.WithAPIKey(f.key))
			require.NoError(t, err)

			// One line for a token; concurrent callers share one request.
			ts := c.TokenSource(id, authpipe.MinValidity(time.Minute))
			calls := f.as.TokenCalls()
			var wg sync.WaitGroup
			toks := make([]string, 8)
			for i := range toks {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tok, err := ts.Token()
					if err == nil {
						toks[i] = tok.AccessToken
					}
				}()
			}
			wg.Wait()
			for _, tok := range toks {
				require.Equal(t, toks[0], tok)
			}
			require.True(t, f.as.Active(ctx, toks[0]), "fosite accepts the token the client got")
			require.Equal(t, calls, f.as.TokenCalls(), "a fresh token: no refresh")

			// Asking for more validity than the token has makes the proxy refresh first.
			tok, err := c.Token(ctx, id, 2*time.Hour)
			require.NoError(t, err)
			require.NotEqual(t, toks[0], tok.AccessToken)
			require.Greater(t, f.as.TokenCalls(), calls, "refreshed at the provider")

			// Typed problems.
			_, err = c.Token(ctx, "conn_doesnotexist", 0)
			var p *authpipe.Problem
			require.ErrorAs(t, err, &p)
			require.Equal(t, 404, p.Status)
			require.Equal(t, "not_found", p.Code)

			// Forwarding: an API-key connection to a local upstream; the caller never sees the key.
			var seen http.Header
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = r.Header.Clone()
				_, _ = io.WriteString(w, r.Method+" "+r.URL.RequestURI())
			}))
			defer up.Close()
			f.h.expect(f.h.do("PUT", "/v1/providers/echo", bootstrapKey, map[string]any{
				"auth_mode": "api_key", "api_base_url": up.URL + "/api", "api_key_auth": "header", "api_key_header": "X-Upstream-Key",
			}), 200, "")
			conn, err := c.CreateConnection(ctx, authpipe.NewConnection{Provider: "echo", EndUserID: "user-42", APIKey: "sk_sdk_sentinel_0123456789"})
			require.NoError(t, err)
			require.Equal(t, "active", conn.Status)
			hc := &http.Client{Transport: c.Transport(conn.ID)}
			res, err := hc.Get("https://ignored.example/v2/items?limit=3")
			require.NoError(t, err)
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			require.Equal(t, 200, res.StatusCode, string(body))
			require.Equal(t, "GET /api/v2/items?limit=3", string(body))
			require.Equal(t, "sk_sdk_sentinel_0123456789", seen.Get("X-Upstream-Key"), "injected by the proxy")
			require.Empty(t, seen.Get("Authorization"), "the application's API key stays with the proxy")

			// Pagination over every connection of the end user.
			var ids []string
			for conn, err := range c.Connections(ctx, authpipe.ListOptions{EndUserID: "user-42", PageSize: 1}) {
				require.NoError(t, err)
				ids = append(ids, conn.ID)
			}
			require.ElementsMatch(t, []string{id, conn.ID}, ids)

			// A DPoP-bound key works only with the client's proofs.
			key, err := authpipe.NewDPoPKey()
			require.NoError(t, err)
			created := f.h.expect(f.h.do("POST", "/v1/api-keys", bootstrapKey, map[string]any{
				"name": "dpop", "scopes": []string{"tokens:read"}, "dpop_jkt": key.Thumbprint()}), 201, "")
			bound := created.Body["key"].(string)
			dc, err := authpipe.New(f.h.srv.URL, authpipe.WithAPIKey(bound), authpipe.WithDPoP(key))
			require.NoError(t, err)
			_, err = dc.Token(ctx, conn.ID, 0)
			require.NoError(t, err)
			plain, err := authpipe.New(f.h.srv.URL, authpipe.WithAPIKey(bound))
			require.NoError(t, err)
			_, err = plain.Token(ctx, conn.ID, 0)
			require.ErrorAs(t, err, &p)
			require.Equal(t, 401, p.Status, "the bound key without a proof")

			// The server's webhook signatures verify with the client's verifier, both during
			// a rotation.
			oldS, newS := "whsec_old_sdk", "whsec_new_sdk"
			payload := []byte(`{"type":"connection.created"}`)
			now := time.Now()
			hdr := webhooksig.Sign([]byte(oldS), now, payload, []byte(newS))
			for _, s := range []string{oldS, newS} {
				require.NoError(t, authpipe.WebhookVerifier{Secrets: []string{s}}.Verify(hdr, payload))
			}
			require.ErrorIs(t, authpipe.WebhookVerifier{Secrets: []string{"whsec_other"}}.Verify(hdr, payload), authpipe.ErrInvalidSignature)
			require.ErrorIs(t, authpipe.WebhookVerifier{Secrets: []string{newS}}.Verify(hdr, append(payload, ' ')), authpipe.ErrInvalidSignature)
			f.noLeaks()
		})
	}
}

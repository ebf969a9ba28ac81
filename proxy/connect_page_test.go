package proxy_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// TestConnectPageConsumesNothing: GET /v1/connect/{session} is a page (which provider,
// for which application) under a strict CSP that echoes nothing of the query; any number
// of GETs leave the session usable; a POST without the public URL's origin, or without
// the session's form token, is refused and consumes nothing; the page's own POST starts
// the flow, once.
func TestConnectPageConsumesNothing(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			f := newFlow(t, d, oauthtest.Options{AutoLogin: true})
			b := f.browser()
			id, connectURL := f.session(nil)

			var token string
			for range 2 { // a link scanner, then the end user
				res, page := b.get(connectURL + "?utm=%3Cscript%3ESENTINEL-query")
				require.Equal(t, http.StatusOK, res.StatusCode, page)
				require.Contains(t, res.Header.Get("Content-Type"), "text/html")
				require.Empty(t, res.Header.Values("Set-Cookie"))
				csp := res.Header.Get("Content-Security-Policy")
				require.Contains(t, csp, "default-src 'none'")
				require.Contains(t, csp, "frame-ancestors 'none'")
				require.Contains(t, csp, "style-src 'nonce-")
				nonce := strings.TrimSuffix(strings.SplitN(strings.SplitN(csp, "'nonce-", 2)[1], "'", 2)[0], "'")
				require.Contains(t, page, `<style nonce="`+nonce+`">`)
				require.Equal(t, "no-store", res.Header.Get("Cache-Control"))
				require.Contains(t, page, `id="provider">Fosite<`)
				require.Contains(t, page, `id="application">default<`, "the workspace's name")
				require.Contains(t, page, `action="`+f.origin+`/v1/connect/`+id+`"`)
				require.NotContains(t, page, "SENTINEL")
				require.NotContains(t, page, "utm=", "the query parameter is not echoed (\"utm\" alone can occur in a random nonce or id)")
				require.NotContains(t, page, "<script")
				require.NotContains(t, strings.ReplaceAll(page, f.origin, ""), "http", "no asset from anywhere (the form's action aside)")
				var ok bool
				token, ok = oauthtest.ConnectFormToken(page)
				require.True(t, ok)
			}
			unstarted := func() {
				t.Helper()
				cs, err := f.h.app.Store.ConnectSession(context.Background(), id)
				require.NoError(t, err)
				require.Nil(t, cs.StartedAt, "the session was not started")
				require.Nil(t, cs.UsedAt)
			}
			unstarted()

			refused := func(req *http.Request, code string) {
				t.Helper()
				res, body := b.do(req)
				require.Equal(t, http.StatusForbidden, res.StatusCode, body)
				require.Contains(t, body, `"code":"`+code+`"`)
				require.Empty(t, res.Header.Values("Set-Cookie"))
			}
			refused(oauthtest.ConnectPost(connectURL, token, ""), "forbidden")                     // no Origin, no Referer
			refused(oauthtest.ConnectPost(connectURL, token, "https://evil.example"), "forbidden") // another site
			refused(oauthtest.ConnectPost(connectURL, token, "null"), "forbidden")                 // an opaque origin
			refused(oauthtest.ConnectPost(connectURL, "", f.origin), "forbidden")                  // no token
			refused(oauthtest.ConnectPost(connectURL, token+"x", f.origin), "forbidden")           // a wrong token
			_, other := f.session(nil)
			_, otherPage := b.get(other)
			otherToken, _ := oauthtest.ConnectFormToken(otherPage)
			refused(oauthtest.ConnectPost(connectURL, otherToken, f.origin), "forbidden") // another session's token
			wrongRef := oauthtest.ConnectPost(connectURL, token, "")
			wrongRef.Header.Set("Referer", "https://evil.example/v1/connect/"+id)
			refused(wrongRef, "forbidden")

			unstarted()
			// Nothing was consumed: the page's own POST (here with a Referer of the page, as a
			// browser that sends no Origin does) starts the flow and completes it.
			post := oauthtest.ConnectPost(connectURL, token, "")
			post.Header.Set("Referer", f.origin+"/v1/connect/"+id)
			res, body := b.do(post)
			require.Equal(t, http.StatusFound, res.StatusCode, body)
			require.Contains(t, strings.Join(res.Header.Values("Set-Cookie"), "\n"), "authpipe_flow=")
			res, body = b.do(oauthtest.ConnectPost(connectURL, token, f.origin))
			require.Equal(t, http.StatusBadRequest, res.StatusCode, body)
			require.Contains(t, body, `"invalid_state"`, "a session starts once")
			res, body = b.get(connectURL)
			require.Equal(t, http.StatusBadRequest, res.StatusCode, body)
			f.noLeaks()
		})
	}
}

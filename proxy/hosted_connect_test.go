package proxy_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// keyPost is the API-key form's POST as a browser on origin sends it.
func keyPost(pageURL string, form url.Values, origin string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, pageURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return req
}

// TestHostedAPIKeyForm (both dialects): an api_key provider's connect page is a labelled
// key form under a CSP whose form-action is the proxy and the return URL's origin; a POST
// from another origin, with a wrong form token or without a key stores nothing and leaves
// the session usable; the good POST stores the connection (read back as the key) and uses
// the session up, ending 303 on the return URL, or on the postMessage result page with
// display=popup; a second POST is invalid_state. An oauth2 session's form refuses a key,
// and an api_key session cannot be started as a sign-in. The key reaches no log or body.
func TestHostedAPIKeyForm(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			f := newFlow(t, d, oauthtest.Options{AutoLogin: true})
			apiKeyProvider(t, f, f.ret)
			b := f.browser()
			before := f.connections()

			id, connectURL := f.session(map[string]any{"provider": "acme", "end_user_id": "user-7"})
			res, page := b.get(connectURL + "?display=popup")
			require.Equal(t, http.StatusOK, res.StatusCode, page)
			csp := res.Header.Get("Content-Security-Policy")
			require.Contains(t, csp, "default-src 'none'")
			require.Contains(t, csp, "form-action 'self' "+strings.TrimSuffix(f.app.URL, "/"))
			require.Contains(t, page, `<label for="api_key">API key</label>`)
			require.Contains(t, page, `type="password" id="api_key" name="api_key" required autofocus`)
			require.Contains(t, page, `name="display" value="popup"`)
			require.NotContains(t, page, "<script")
			token, ok := oauthtest.ConnectFormToken(page)
			require.True(t, ok)

			good := url.Values{"form_token": {token}, "api_key": {pastedKey}}
			usable := func() {
				t.Helper()
				cs, err := f.h.app.Store.ConnectSession(context.Background(), id)
				require.NoError(t, err)
				require.Nil(t, cs.UsedAt)
				require.Nil(t, cs.StartedAt)
				require.Equal(t, before, f.connections(), "nothing stored")
			}
			res, body := b.do(keyPost(connectURL, good, "https://evil.example"))
			require.Equal(t, http.StatusForbidden, res.StatusCode, body)
			usable()
			res, body = b.do(keyPost(connectURL, url.Values{"form_token": {token + "x"}, "api_key": {pastedKey}}, f.origin))
			require.Equal(t, http.StatusForbidden, res.StatusCode, body)
			usable()
			res, body = b.do(keyPost(connectURL, url.Values{"form_token": {token}, "api_key": {""}}, f.origin))
			require.Equal(t, http.StatusBadRequest, res.StatusCode, body)
			usable()
			res, body = b.do(keyPost(connectURL, url.Values{"form_token": {token}}, f.origin)) // the sign-in form's POST
			require.Equal(t, http.StatusBadRequest, res.StatusCode, body)
			usable()

			res, body = b.do(keyPost(connectURL, good, f.origin))
			require.Equal(t, http.StatusSeeOther, res.StatusCode, body)
			ret, err := url.Parse(res.Header.Get("Location"))
			require.NoError(t, err)
			require.Equal(t, f.ret, ret.Scheme+"://"+ret.Host+ret.Path)
			require.Equal(t, "connected", ret.Query().Get("status"))
			connID := ret.Query().Get("connection_id")
			r := f.h.expect(f.h.do("GET", "/v1/connections/"+connID+"/token", f.key, nil), 200, "")
			require.Equal(t, "api_key", r.Body["credential_type"])
			require.Equal(t, pastedKey, r.Body["api_key"])
			require.Equal(t, "user-7", f.h.expect(f.h.do("GET", "/v1/connections/"+connID, f.key, nil), 200, "").Body["end_user_id"])

			res, body = b.do(keyPost(connectURL, good, f.origin))
			require.Equal(t, http.StatusBadRequest, res.StatusCode, body)
			require.Contains(t, body, "invalid_state")
			require.Equal(t, before+1, f.connections())

			// display=popup: the result page posts to the return URL's origin, never "*".
			_, connectURL = f.session(map[string]any{"provider": "acme", "end_user_id": "user-8"})
			_, page = b.get(connectURL + "?display=popup")
			token, _ = oauthtest.ConnectFormToken(page)
			res, body = b.do(keyPost(connectURL, url.Values{"form_token": {token}, "api_key": {pastedKey}, "display": {"popup"}}, f.origin))
			require.Equal(t, http.StatusOK, res.StatusCode, body)
			require.Contains(t, res.Header.Get("Content-Security-Policy"), "script-src 'nonce-")
			require.Contains(t, body, `window.opener.postMessage(msg, "`+f.app.URL+`")`)
			require.NotContains(t, body, `"*"`)
			require.Contains(t, body, `type: "authpipe:connect"`)

			// An oauth2 session's form refuses a key; an api_key session is no sign-in.
			_, oauthURL := f.session(nil)
			_, page = b.get(oauthURL)
			token, _ = oauthtest.ConnectFormToken(page)
			res, body = b.do(keyPost(oauthURL, url.Values{"form_token": {token}, "api_key": {pastedKey}}, f.origin))
			require.Equal(t, http.StatusBadRequest, res.StatusCode, body)
			require.Equal(t, before+2, f.connections())

			require.NotContains(t, f.h.logs.String(), pastedKey, "the key reached the logs")
			for _, bd := range f.bodies {
				require.NotContains(t, bd, pastedKey, "the key reached a page")
			}
		})
	}
}

package proxy_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	authpipe "github.com/authpipe/authpipe-proxy/sdk/go"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// TestHostedBasicFormInChromium: the end user types a username and password into the
// hosted connect page of a basic provider in a real browser (keyboard only: the username
// field has the focus, Tab to the password, Enter submits); the form posts to the proxy,
// the browser lands on the application's return URL with the connection id, and the
// application — which never received the password in any request — reads the pair with
// the Go client. The page is screenshotted.
func TestHostedBasicFormInChromium(t *testing.T) {
	f := newFlowEnv(t, store.SQLite, oauthtest.Options{}, map[string]string{"AUTHPIPE_PUBLIC_URL": "self"})
	app := newAppServer(t, `<!doctype html><html><body><p id="done">integration page</p></body></html>`, nil)
	basicProvider(t, f.h, "https://basic.example.com", app.URL+"/done")
	id, connectURL := f.session(map[string]any{"provider": "acme-basic", "end_user_id": "user-7"})

	bctx, cancel := headless(t)
	defer cancel()
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(connectURL), chromedp.WaitVisible("#username")))
	provider, err := chromedp.Run(bctx, chromedp.Text("#provider"))
	require.NoError(t, err)
	require.Equal(t, "Acme Basic", provider)
	for sel, want := range map[string]string{`label[for="username"]`: "Username", `label[for="password"]`: "Password or API token"} {
		label, err := chromedp.Run(bctx, chromedp.Text(sel))
		require.NoError(t, err)
		require.Equal(t, want, label)
	}
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	shot := filepath.Join(screenshotDir(t), "hosted-connect-basic.png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot: %s", shot)

	focused, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.activeElement.id`))
	require.NoError(t, err)
	require.Equal(t, "username", focused, "the username field has the focus")
	require.NoError(t, chromedp.Do(bctx, chromedp.SendKeys("#username", basicUser+"\t")))
	focused, err = chromedp.Run(bctx, chromedp.Evaluate[string](`document.activeElement.id`))
	require.NoError(t, err)
	require.Equal(t, "password", focused, "Tab goes to the password")
	require.NoError(t, chromedp.Do(bctx, chromedp.SendKeys("#password", basicPassword+"\r"), chromedp.WaitVisible("#done")))

	landed, err := chromedp.Run(bctx, chromedp.Evaluate[string](`location.href`))
	require.NoError(t, err)
	u, err := url.Parse(landed)
	require.NoError(t, err)
	require.Equal(t, app.URL+"/done", u.Scheme+"://"+u.Host+u.Path)
	require.Equal(t, "connected", u.Query().Get("status"))
	connID := u.Query().Get("connection_id")
	require.True(t, strings.HasPrefix(connID, "conn_"), landed)
	require.NotContains(t, app.requests(), "SENTINEL-basic-pw", "the application never received the password")
	require.NotContains(t, f.h.logs.String(), "SENTINEL-basic-pw")
	cs, err := f.h.app.Store.ConnectSession(context.Background(), id)
	require.NoError(t, err)
	require.NotNil(t, cs.UsedAt, "the session is used up")

	c, err := authpipe.New(f.h.srv.URL, authpipe.WithAPIKey(f.key))
	require.NoError(t, err)
	tok, err := c.Token(context.Background(), connID, 0)
	require.NoError(t, err)
	require.Equal(t, "basic", tok.CredentialType)
	require.Equal(t, basicUser, tok.Username)
	require.Equal(t, basicPassword, tok.Password, "the application reads the pair the end user typed, through the API")
}

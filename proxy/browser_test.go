package proxy_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// chromiumPath finds headless Chromium (scripts/deps/30-chromium.sh exports
// AUTHPIPE_TEST_CHROMIUM). On CI a missing browser fails the test; locally it skips loudly.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("AUTHPIPE_TEST_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(p); err != nil {
		storetest.RequireOrSkip(t, "Chromium (AUTHPIPE_TEST_CHROMIUM)", err)
	}
	return p
}

// TestConnectFlowInChromium drives the whole connect flow in a real headless Chromium:
// the connect URL, the provider's login form, the callback with the flow cookie, and the
// application's return page; then the application fetches the token.
func TestConnectFlowInChromium(t *testing.T) {
	bin := chromiumPath(t)
	// The public URL is the server's own address: the connect page's POST must come
	// from its origin.
	f := newFlowEnv(t, store.SQLite, oauthtest.Options{}, map[string]string{"AUTHPIPE_PUBLIC_URL": "self"}) // login form, no auto-consent
	f.as.SetIss(oauthtest.IssCorrect)
	_, connectURL := f.session(nil)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()

	// The connect page: which provider, for which application. A GET consumes nothing,
	// so the page is loaded twice before its button is clicked.
	err := chromedp.Do(bctx, chromedp.Navigate(connectURL), chromedp.WaitVisible(chromedp.ID("continue")))
	if errors.Is(err, exec.ErrNotFound) {
		storetest.RequireOrSkip(t, "Chromium", err)
	}
	require.NoError(t, err)
	provider, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("provider")))
	require.NoError(t, err)
	require.Equal(t, "Fosite", provider)
	application, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("application")))
	require.NoError(t, err)
	require.Equal(t, "default", application, "the workspace's name")
	require.NoError(t, chromedp.Do(bctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("continue"))))

	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(chromedp.ID("continue")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "wonderland"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("done")),
	))
	landed, err := chromedp.Run(bctx, chromedp.Location())
	require.NoError(t, err)
	page, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("done")))
	require.NoError(t, err)
	require.Equal(t, "integration page", page)

	u, err := url.Parse(landed)
	require.NoError(t, err)
	require.Equal(t, f.ret, u.Scheme+"://"+u.Host+u.Path, "landed on the return URL")
	require.Equal(t, "connected", u.Query().Get("status"))
	id := u.Query().Get("connection_id")
	require.True(t, strings.HasPrefix(id, "conn_"), landed)
	require.EqualValues(t, 1, f.as.TokenCalls())

	tok := f.token(id)
	require.True(t, f.as.Active(context.Background(), tok), "fosite accepts the token the browser flow stored")
	require.Equal(t, 200, f.apiCall(tok))
	f.noLeaks()
}

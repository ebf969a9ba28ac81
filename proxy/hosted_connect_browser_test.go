package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	authpipe "github.com/authpipe/authpipe-proxy/sdk/go"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// pastedKey is what the end user pastes into the hosted page: a sentinel the application
// must never see (no request to it, nothing in its page's DOM or messages).
const pastedKey = "SENTINEL-pasted-key-5f3a9c0e"

// appServer is the application in a browser test: its own origin, a page of the test's
// choosing at "/", files under "/static/", and every request it received (path, query,
// headers, body) for the never-saw-the-key assertions.
type appServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newAppServer(t *testing.T, page string, static map[string]string) *appServer {
	a := &appServer{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var hdr strings.Builder
		_ = r.Header.Write(&hdr)
		a.mu.Lock()
		a.seen = append(a.seen, r.URL.String()+"\n"+hdr.String()+"\n"+string(body))
		a.mu.Unlock()
		if js, ok := static[r.URL.Path]; ok {
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = io.WriteString(w, js)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/" || r.URL.Path == "/done" {
			_, _ = io.WriteString(w, page)
			return
		}
		_, _ = io.WriteString(w, `<!doctype html><html><body><p id="done">integration page</p></body></html>`)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *appServer) requests() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.seen, "\n---\n")
}

// headless starts Chromium (its popup blocker on) and returns a browser context.
func headless(t *testing.T) (context.Context, context.CancelFunc) {
	bin := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true), chromedp.WindowSize(900, 700), chromedp.UserDataDir(t.TempDir())}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	return bctx, func() { cancelBrowser(); cancelAlloc(); cancel() }
}

// screenshotDir is where browser tests write their PNGs: AUTHPIPE_TEST_SCREENSHOTS, or a
// temporary directory.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("AUTHPIPE_TEST_SCREENSHOTS"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

// popupTarget waits for the popup the page opens next and returns a context on it.
func popupTarget(t *testing.T, bctx context.Context) (func() context.Context, func()) {
	ch := chromedp.WaitNewTarget(bctx, func(info *target.Info) bool { return strings.Contains(info.URL, "/v1/connect/") })
	var cancel context.CancelFunc = func() {}
	return func() context.Context {
			select {
			case id := <-ch:
				var pctx context.Context
				pctx, cancel = chromedp.NewContext(bctx, chromedp.WithTargetID(id))
				return pctx
			case <-time.After(60 * time.Second):
				t.Fatal("no popup opened")
				return nil
			}
		}, func() {
			cancel()
		}
}

// apiKeyProvider configures provider "acme" (api_key, display name "Acme Mail") whose
// sessions end on returnURL.
func apiKeyProvider(t *testing.T, f *flow, returnURL string) {
	writer := f.h.createKey("providers:write")
	f.h.expect(f.h.do("PUT", "/v1/providers/acme", writer, map[string]any{
		"display_name": "Acme Mail", "auth_mode": "api_key", "api_base_url": f.app.URL, "api_key_auth": "header",
		"api_key_header": "X-Api-Key", "return_urls": []string{returnURL},
	}), 200, "")
}

// The application's page of the hosted-form test: a button that opens the connect URL in
// a popup and writes the message it gets (from the proxy's origin only) into #result.
const hostedFormApp = `<!doctype html><html><body><button id="open">Connect Acme</button><pre id="result"></pre>
<script>
var proxyOrigin = new URL(location.hash.slice(1)).origin;
document.getElementById("open").onclick = function () { window.open(location.hash.slice(1) + "?display=popup", "authpipe", "popup,width=500,height=600"); };
window.addEventListener("message", function (e) {
  if (e.origin !== proxyOrigin) return;
  document.getElementById("result").textContent = JSON.stringify(e.data);
});
</script></body></html>`

// TestHostedAPIKeyFormInChromium: the end user pastes an API key into the hosted connect
// page, opened in a popup by the application's page; the key goes from the browser to the
// proxy, the result page posts {status, connectionId} to the opener (the return URL's
// origin), and the application — which never received the key in any request, page or
// message — reads it with the Go client. The page is screenshotted.
func TestHostedAPIKeyFormInChromium(t *testing.T) {
	f := newFlowEnv(t, store.SQLite, oauthtest.Options{}, map[string]string{"AUTHPIPE_PUBLIC_URL": "self"})
	app := newAppServer(t, hostedFormApp, nil)
	apiKeyProvider(t, f, app.URL+"/done")
	id, connectURL := f.session(map[string]any{"provider": "acme", "end_user_id": "user-7"})

	bctx, cancel := headless(t)
	defer cancel()
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(app.URL+"/#"+connectURL), chromedp.WaitVisible("#open")))
	popup, closePopup := popupTarget(t, bctx)
	defer closePopup()
	require.NoError(t, chromedp.Do(bctx, chromedp.Click("#open")))
	pctx := popup()

	require.NoError(t, chromedp.Do(pctx, chromedp.WaitVisible("#api_key")))
	provider, err := chromedp.Run(pctx, chromedp.Text("#provider"))
	require.NoError(t, err)
	application, err := chromedp.Run(pctx, chromedp.Text("#application"))
	require.NoError(t, err)
	label, err := chromedp.Run(pctx, chromedp.Text(`label[for="api_key"]`))
	require.NoError(t, err)
	png, err := chromedp.Run(pctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.Equal(t, "Acme Mail", provider)
	require.Equal(t, "default", application)
	require.Equal(t, "API key", label)
	dir := screenshotDir(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hosted-connect-api-key.png"), png, 0o644))
	t.Logf("screenshot: %s", filepath.Join(dir, "hosted-connect-api-key.png"))

	// Keyboard only: the field has the focus, Enter submits.
	focused, err := chromedp.Run(pctx, chromedp.Evaluate[string](`document.activeElement.id`))
	require.NoError(t, err)
	require.Equal(t, "api_key", focused, "the key field has the focus")
	require.NoError(t, chromedp.Do(pctx, chromedp.SendKeys("#api_key", pastedKey+"\r")))

	result, err := chromedp.Run(bctx, chromedp.Poll[string](`document.getElementById("result").textContent`))
	require.NoError(t, err)
	require.Contains(t, result, `"type":"authpipe:connect"`)
	require.Contains(t, result, `"status":"connected"`)
	require.NotContains(t, result, pastedKey)
	dom, err := chromedp.Run(bctx, chromedp.OuterHTML("html"))
	require.NoError(t, err)
	require.NotContains(t, dom, pastedKey)
	require.NotContains(t, app.requests(), pastedKey, "the application never received the key")
	require.NotContains(t, f.h.logs.String(), pastedKey)

	connID := between(result, `"connectionId":"`, `"`)
	require.True(t, strings.HasPrefix(connID, "conn_"), result)
	cs, err := f.h.app.Store.ConnectSession(context.Background(), id)
	require.NoError(t, err)
	require.NotNil(t, cs.UsedAt, "the session is used up")

	c, err := authpipe.New(f.h.srv.URL, authpipe.WithAPIKey(f.key))
	require.NoError(t, err)
	tok, err := c.Token(context.Background(), connID, 0)
	require.NoError(t, err)
	require.Equal(t, "api_key", tok.CredentialType)
	require.Equal(t, pastedKey, tok.APIKey, "the application reads the key the end user typed, through the API")
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	if j := strings.Index(s, to); j >= 0 {
		return s[:j]
	}
	return s
}

package proxy_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// sdkJS reads the browser SDK's built module (scripts/deps/60-node.sh builds sdk/js and
// exports AUTHPIPE_TEST_SDK_JS). On CI a missing build fails; locally it skips loudly.
func sdkJS(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(sdkJSDir(), "index.js"))
	if err != nil {
		storetest.RequireOrSkip(t, "the browser SDK's build (sdk/js, AUTHPIPE_TEST_SDK_JS)", err)
	}
	return string(b)
}

func sdkJSDir() string {
	if dir := os.Getenv("AUTHPIPE_TEST_SDK_JS"); dir != "" {
		return dir
	}
	return filepath.Join("..", "sdk", "js", "dist")
}

// The application's page of the SDK tests: it imports the SDK from its own origin, calls
// connect() on a click (or run() without a gesture), and writes the events and the outcome
// into the page; back from a redirect flow it shows redirectResult().
const sdkApp = `<!doctype html><html><body><button id="go">Connect</button><pre id="events"></pre><pre id="result"></pre>
<script type="module">
import { connect, redirectResult } from "/static/index.js";
const out = (s) => { document.getElementById("result").textContent = s; };
const back = redirectResult();
if (back) out(back instanceof Error ? "error:" + back.code : "connected:" + back.connectionId);
window.run = () => connect(decodeURIComponent(location.hash.slice(1)), {
  onEvent: (e) => { document.getElementById("events").textContent += e.type + "\n"; },
}).then((r) => out("connected:" + r.connectionId), (e) => out("error:" + e.code));
document.getElementById("go").onclick = () => { window.run(); };
</script></body></html>`

// TestBrowserSDKInChromium drives sdk/js in headless Chromium against the real server and
// the fosite provider: the popup flow, a provider error, the end user closing the popup,
// and a blocked popup falling back to a redirect.
func TestBrowserSDKInChromium(t *testing.T) {
	js := sdkJS(t)
	f := newFlowEnv(t, store.SQLite, oauthtest.Options{AutoLogin: true}, map[string]string{"AUTHPIPE_PUBLIC_URL": "self"})
	f.as.SetIss(oauthtest.IssCorrect)
	app := newAppServer(t, sdkApp, map[string]string{"/static/index.js": js})
	// The sessions end on the application's origin (the popup's message goes there only).
	reactJS, err := os.ReadFile(filepath.Join(sdkJSDir(), "..", "dist-test", "react-app.js"))
	if err != nil {
		storetest.RequireOrSkip(t, "the React test page's bundle (sdk/js npm run build:test)", err)
	}
	reactApp := newAppServer(t, `<!doctype html><html><body><div id="root"></div><script type="module" src="/static/react-app.js"></script></body></html>`,
		map[string]string{"/static/react-app.js": string(reactJS)})
	f.h.expect(f.h.do("PUT", "/v1/providers/fosite", bootstrapKey, map[string]any{
		"display_name": "Fosite", "auth_mode": "oauth2", "client_id": f.as.ClientID(), "client_secret": clientSecret,
		"scopes": []string{"read"}, "callback_urls": []string{f.callback}, "return_urls": []string{app.URL + "/done", reactApp.URL + "/done"},
		"authorization_url": f.as.AuthorizationURL(), "token_url": f.as.TokenURL(), "revocation_url": f.as.RevocationURL(),
		"issuer": f.as.Issuer(), "token_auth_method": "client_secret_basic",
	}), 200, "")

	bctx, cancel := headless(t)
	defer cancel()
	n := 0
	open := func(connectURL string) {
		t.Helper()
		n++ // a new document each time (a change of fragment alone would keep the page)
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(app.URL+"/?n="+strconv.Itoa(n)+"#"+connectURL), chromedp.WaitVisible("#go"),
			chromedp.Poll[chromedp.Void](`typeof window.run === "function"`)))
	}
	result := func(ctx context.Context) string {
		t.Helper()
		for i := 0; ; i++ { // a redirect flow navigates under the poll: poll the next document
			r, err := chromedp.Run(ctx, chromedp.Poll[string](`(document.getElementById("result") || {}).textContent`, chromedp.WithPollingTimeout(60*time.Second)))
			if err != nil && strings.Contains(err.Error(), "navigated") && i < 20 {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			require.NoError(t, err)
			return r
		}
	}
	events := func() string {
		e, err := chromedp.Run(bctx, chromedp.Text("#events"))
		require.NoError(t, err)
		return e
	}
	// popupFlow clicks Connect and returns a context on the popup at its connect page.
	popupFlow := func() (context.Context, func()) {
		t.Helper()
		popup, closePopup := popupTarget(t, bctx)
		require.NoError(t, chromedp.Do(bctx, chromedp.Click("#go")))
		pctx := popup()
		require.NoError(t, chromedp.Do(pctx, chromedp.WaitVisible("#continue")))
		return pctx, closePopup
	}

	t.Run("popup", func(t *testing.T) {
		_, connectURL := f.session(nil)
		open(connectURL)
		pctx, closePopup := popupFlow()
		defer closePopup()
		require.NoError(t, chromedp.Do(pctx, chromedp.Click("#continue")))
		r := result(bctx)
		require.True(t, strings.HasPrefix(r, "connected:conn_"), r)
		require.Equal(t, "opened\nconnected\n", events())
		tok := f.token(strings.TrimPrefix(r, "connected:"))
		require.True(t, f.as.Active(context.Background(), tok), "fosite accepts the token")
	})

	t.Run("provider error", func(t *testing.T) {
		_, connectURL := f.session(map[string]any{"provider": "fosite", "end_user_id": "user-42", "scopes": []string{"not-granted"}})
		open(connectURL)
		pctx, closePopup := popupFlow()
		defer closePopup()
		require.NoError(t, chromedp.Do(pctx, chromedp.Click("#continue")))
		require.Equal(t, "error:invalid_scope", result(bctx))
		require.Equal(t, "opened\nerror\n", events())
	})

	t.Run("user closes the popup", func(t *testing.T) {
		_, connectURL := f.session(nil)
		open(connectURL)
		pctx, closePopup := popupFlow()
		defer closePopup()
		_, err := chromedp.Run(pctx, chromedp.Evaluate[chromedp.Void](`window.close()`))
		_ = err // the target may go away before the answer
		require.Equal(t, "error:window_closed", result(bctx))
		require.Equal(t, "opened\nclosed\n", events())
	})

	t.Run("blocked popup falls back to a redirect", func(t *testing.T) {
		_, connectURL := f.session(nil)
		open(connectURL)
		// A blocked popup: window.open returns null, as a popup blocker makes it (headless
		// Chromium driven over CDP lets every window.open through, so the page's is replaced).
		_, err := chromedp.Run(bctx, chromedp.Evaluate[chromedp.Void](`window.open = () => null; setTimeout(() => window.run(), 50); undefined`))
		require.NoError(t, err)
		require.NoError(t, chromedp.Do(bctx, chromedp.WaitVisible("#continue"), chromedp.Click("#continue")))
		var loc string
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if loc, _ = chromedp.Run(bctx, chromedp.Location()); strings.HasPrefix(loc, app.URL+"/done?") {
				break
			}
		}
		require.True(t, strings.HasPrefix(loc, app.URL+"/done?"), "back on the return URL: %s", loc)
		r := result(bctx)
		require.True(t, strings.HasPrefix(r, "connected:conn_"), r)
	})
	t.Run("react hook", func(t *testing.T) {
		_, connectURL := f.session(map[string]any{"provider": "fosite", "end_user_id": "user-42", "return_url": reactApp.URL + "/done"})
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(reactApp.URL+"/#"+connectURL), chromedp.WaitVisible("#react-go")))
		status, err := chromedp.Run(bctx, chromedp.Text("#react-status"))
		require.NoError(t, err)
		require.Equal(t, "idle", status)
		popup, closePopup := popupTarget(t, bctx)
		defer closePopup()
		require.NoError(t, chromedp.Do(bctx, chromedp.Click("#react-go")))
		pctx := popup()
		require.NoError(t, chromedp.Do(pctx, chromedp.WaitVisible("#continue"), chromedp.Click("#continue")))
		r, err := chromedp.Run(bctx, chromedp.Poll[string](`(t => t.startsWith("connected:") && t)(document.getElementById("react-status").textContent)`,
			chromedp.WithPollingTimeout(60*time.Second)))
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(r, "connected:conn_"), r)
	})
	f.noLeaks()
}

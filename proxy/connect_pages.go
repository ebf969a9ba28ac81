package proxy

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// The hosted connect page and the result page (API.md "Connect", docs/oauth.md "Hosted
// connect page"). The connect page shows what the provider's auth mode needs: a button
// to the provider's sign-in (oauth2), or a form for the API key (api_key) or the username
// and password (basic), which the end user's browser posts to the proxy itself, so the
// credential never passes through the application. The words are in connectStrings (browser_pages.go). Every page has a CSP
// with a fresh nonce and no third-party asset.
//
// A flow opened by the browser SDK in a popup (?display=popup, sdk/js) ends on the result
// page, whose script posts {type: "authpipe:connect", status, connectionId, error} to
// window.opener with the return URL's exact origin as target (never "*"), then closes the
// popup; without an opener it goes on to the return URL as a redirect flow does.

// displayPopup is the one accepted value of the connect URL's display parameter.
const displayPopup = "popup"

type connectPageData struct {
	Nonce, Provider, Application, Action, Token string
	APIKey, Basic, Popup                        bool
	T                                           map[string]string
	// Fields are the connection_config parameters the end user types (oauthflow.Page),
	// posted as Prefix + name (typedConfig), in either mode.
	Fields []oauthflow.ConfigParam
	Prefix string
}

const pageStyle = `body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}` +
	`button{font-size:1rem;padding:.5rem 1rem}label{display:block;font-weight:600;margin:1rem 0 .25rem}` +
	`input{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}:focus-visible{outline:3px solid #1a5fb4;outline-offset:2px}` +
	`.hint{color:#555;font-size:.9rem}code{color:#555}`

var connectPage = template.Must(template.New("connect").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>{{.T.connect}} {{.Provider}}</title>
<style nonce="{{.Nonce}}">` + pageStyle + `</style></head>
<body><main><h1>{{.T.connect}} {{.Provider}}</h1>
<p><strong id="application">{{.Application}}</strong> {{.T.asks}} <strong id="provider">{{.Provider}}</strong> {{.T.account}}
{{if .APIKey}}{{.T.keyIntro}}{{else if .Basic}}{{.T.basicIntro}}{{else}}{{.T.signInIntro}} {{.Provider}}.{{end}}</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="form_token" value="{{.Token}}">{{if .Popup}}<input type="hidden" name="display" value="popup">{{end}}
{{range $i, $f := .Fields}}<label for="{{$.Prefix}}{{.Name}}">{{.Label}}</label>
{{if .Enum}}<select id="{{$.Prefix}}{{.Name}}" name="{{$.Prefix}}{{.Name}}" required{{if eq $i 0}} autofocus{{end}}>{{range .Enum}}<option>{{.}}</option>{{end}}</select>
{{else}}<input id="{{$.Prefix}}{{.Name}}" name="{{$.Prefix}}{{.Name}}" required{{if eq $i 0}} autofocus{{end}} autocomplete="off" spellcheck="false" autocapitalize="none">{{end}}
{{end}}{{if .APIKey}}<label for="api_key">{{.T.keyLabel}}</label>
<input type="password" id="api_key" name="api_key" required{{if not .Fields}} autofocus{{end}} autocomplete="off" spellcheck="false" maxlength="8192" aria-describedby="key_hint">
<p class="hint" id="key_hint">{{.T.keyHint}}</p>
<button type="submit" id="continue">{{.T.keySubmit}}</button>{{else if .Basic}}<label for="username">{{.T.userLabel}}</label>
<input id="username" name="username" required{{if not .Fields}} autofocus{{end}} autocomplete="off" spellcheck="false" autocapitalize="none" maxlength="256">
<label for="password">{{.T.passLabel}}</label>
<input type="password" id="password" name="password" required autocomplete="off" spellcheck="false" maxlength="8192" aria-describedby="basic_hint">
<p class="hint" id="basic_hint">{{.T.basicHint}}</p>
<button type="submit" id="continue">{{.T.keySubmit}}</button>{{else}}<button type="submit" id="continue"{{if not .Fields}} autofocus{{end}}>{{.T.continueTo}} {{.Provider}}</button>{{end}}</form>
</main></body></html>`))

// renderConnectPage writes the connect page of page to the browser.
func (a *connectAPI) renderConnectPage(c *gin.Context, page oauthflow.Page, popup bool) {
	nonce := ids.Random(16)
	h := c.Writer.Header()
	csp := "default-src 'none'; style-src 'nonce-" + nonce + "'; base-uri 'none'; frame-ancestors 'none'"
	if page.Mode.Typed() {
		// The credential's form posts to the proxy only (the 303 to the return URL that may follow
		// is a redirect of the form's navigation: Chromium checks form-action on it too).
		csp += "; form-action 'self'"
		if o := originOf(page.ReturnURL); o != "" {
			csp += " " + o
		}
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin") // the POST carries Origin and Referer; the provider gets neither path nor query
	h.Set("X-Frame-Options", "DENY")
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	_ = connectPage.Execute(c.Writer, connectPageData{Nonce: nonce, Provider: page.Provider, Application: page.Application,
		Action: a.publicURL + "/v1/connect/" + c.Param("session"), Token: page.FormToken,
		APIKey: page.Mode == oauthflow.AuthModeAPIKey, Basic: page.Mode == oauthflow.AuthModeBasic, Popup: popup, T: connectStrings,
		Fields: page.Fields, Prefix: oauthflow.ConfigFieldPrefix})
}

type resultPageData struct {
	Nonce, ConnectionID, Error, Target, Next string
	OK                                       bool
	T                                        map[string]string
}

var resultPage = template.Must(template.New("result").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>{{if .OK}}{{.T.connected}}{{else}}{{.T.failed}}{{end}}</title>
<style nonce="{{.Nonce}}">` + pageStyle + `</style></head>
<body><main><h1>{{if .OK}}{{.T.connected}}{{else}}{{.T.failed}}{{end}}</h1>
{{if .OK}}<p>{{.T.connectedBody}}</p><p>{{.T.connection}} <code id="connection_id">{{.ConnectionID}}</code></p>
{{else}}<p>{{.T.failedBody}}</p><p>{{.T.error}} <code id="error">{{.Error}}</code></p>{{end}}
</main>{{if .Target}}<script nonce="{{.Nonce}}">(function () {
  var msg = {type: "authpipe:connect", status: {{if .OK}}"connected"{{else}}"error"{{end}}, connectionId: {{.ConnectionID}}, error: {{.Error}}};
  if (window.opener && !window.opener.closed) {
    window.opener.postMessage(msg, {{.Target}});
    window.close();
  } else {
    window.location.replace({{.Next}});
  }
})();</script>{{end}}</body></html>`))

// finishFlow ends a flow with result: a popup flow on the result page that posts it to the
// opener (the return URL's origin as target); else a 302 to the return URL with result
// appended to its query (a 303 after a form's POST); or, without a return URL, the
// result page alone.
func finishFlow(c *gin.Context, returnURL string, result url.Values, popup bool) {
	next := ""
	if returnURL != "" {
		sep := "?"
		if strings.Contains(returnURL, "?") {
			sep = "&"
		}
		next = returnURL + sep + result.Encode()
	}
	if next != "" && !popup {
		if c.Request.Method == http.MethodPost {
			c.Header("Location", next)
			c.Status(http.StatusSeeOther)
			c.Writer.WriteHeaderNow()
			return
		}
		redirect(c, next)
		return
	}
	nonce := ids.Random(16)
	target := ""
	if popup {
		target = originOf(returnURL)
	}
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; script-src 'nonce-"+nonce+"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	_ = resultPage.Execute(c.Writer, resultPageData{Nonce: nonce, OK: result.Get("status") == "connected",
		ConnectionID: result.Get("connection_id"), Error: result.Get("error"), Target: target, Next: next, T: connectStrings})
}

package proxy

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/providers"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// The OAuth connect flow over HTTP (API.md "Connect", docs/oauth.md); the flow itself is
// oauthflow.Flows:
//
//	POST /v1/connect/sessions         the application asks for a session    (API key)
//	GET  /v1/connect/{session}        the browser's connect page, consumes nothing (no API key)
//	POST /v1/connect/{session}        the page's form starts it: 302 to provider (no API key)
//	GET  /v1/oauth/callback           the provider sends the browser back    (no API key)
//	POST /v1/connections/{id}/reconnect  a session that restores a connection (API key)

// connectAPI is the connect flows' HTTP side: request parsing, the flow cookie,
// redirects and the result page.
type connectAPI struct {
	flows     *oauthflow.Flows
	publicURL string
	events    EventSink
}

type connectRequest struct {
	Provider    string   `json:"provider"`
	EndUserID   string   `json:"end_user_id"`
	CallbackURL string   `json:"callback_url"`
	ReturnURL   string   `json:"return_url"`
	Scopes      []string `json:"scopes"`
}

func (r connectRequest) session(workspaceID string) oauthflow.SessionRequest {
	return oauthflow.SessionRequest{WorkspaceID: workspaceID, Provider: r.Provider, EndUserID: r.EndUserID,
		CallbackURL: r.CallbackURL, ReturnURL: r.ReturnURL, Scopes: r.Scopes}
}

type connectResponse struct {
	ID         string    `json:"id"`
	ConnectURL string    `json:"connect_url"`
	ExpiresAt  time.Time `json:"expires_at"`
}

func (a *connectAPI) handleCreateSession(c *gin.Context) {
	var req connectRequest
	if !bindJSON(c, &req) {
		return
	}
	switch {
	case !providers.ValidKey(req.Provider):
		fail(c, problem.ErrInvalidRequest.WithField("provider", "required"))
		return
	case !validEndUser(req.EndUserID):
		fail(c, problem.ErrInvalidRequest.WithField("end_user_id", "1–256 printable characters"))
		return
	}
	cs, err := a.flows.CreateSession(c.Request.Context(), req.session(principal(c).WorkspaceID))
	a.renderSession(c, cs, err)
}

func (a *connectAPI) handleReconnect(c *gin.Context) {
	var req connectRequest
	if c.Request.ContentLength != 0 && !bindJSON(c, &req) {
		return
	}
	ws := principal(c).WorkspaceID
	cs, err := a.flows.Reconnect(c.Request.Context(), ws, c.Param("id"), req.session(ws))
	a.renderSession(c, cs, err)
}

func (a *connectAPI) renderSession(c *gin.Context, cs store.ConnectSession, err error) {
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, connectResponse{ID: cs.ID, ConnectURL: a.publicURL + "/v1/connect/" + cs.ID,
		ExpiresAt: cs.ExpiresAt})
}

// handlePage is the browser's GET of a connect link: the connect page, which consumes
// nothing (a link scanner's GET leaves the session as it was).
func (a *connectAPI) handlePage(c *gin.Context) {
	page, err := a.flows.Preview(c.Request.Context(), c.Param("session"))
	if err != nil {
		fail(c, err)
		return
	}
	nonce := ids.Random(16)
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin") // the POST carries Origin and Referer; the provider gets neither path nor query
	h.Set("X-Frame-Options", "DENY")
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	_ = connectPage.Execute(c.Writer, map[string]string{"Nonce": nonce, "Provider": page.Provider,
		"Application": page.Application, "Action": a.publicURL + "/v1/connect/" + c.Param("session"), "Token": page.FormToken})
}

var connectPage = template.Must(template.New("connect").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Connect {{.Provider}}</title>
<style nonce="{{.Nonce}}">body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}button{font-size:1rem;padding:.5rem 1rem}</style></head>
<body><h1>Connect {{.Provider}}</h1>
<p><strong id="application">{{.Application}}</strong> asks to connect your <strong id="provider">{{.Provider}}</strong> account.
You will sign in at {{.Provider}} and choose what to allow.</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="form_token" value="{{.Token}}">
<button type="submit" id="continue">Continue to {{.Provider}}</button></form>
</body></html>`))

// handleStart is the connect page's POST: after the origin check (the request comes from
// a page of the public URL) and the form token, the flow is started, the flow cookie set
// and the browser redirected to the provider. A refused POST consumes nothing.
func (a *connectAPI) handleStart(c *gin.Context) {
	if !sameOrigin(c.Request, a.publicURL) {
		fail(c, problem.ErrForbidden.WithDetail("the connect form must be posted from the connect page"))
		return
	}
	cookieName, secure := a.flowCookieName()
	nonce, _ := c.Cookie(cookieName)
	st, err := a.flows.Start(c.Request.Context(), c.Param("session"), c.PostForm("form_token"), nonce)
	if err != nil {
		fail(c, err)
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: cookieName, Value: st.Nonce, Path: "/", MaxAge: int(oauthflow.SessionLifetime / time.Second),
		Secure: secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	redirect(c, st.AuthURL)
}

// sameOrigin reports whether r comes from a page of publicURL's origin: its Origin
// header, or without one its Referer, names that origin.
func sameOrigin(r *http.Request, publicURL string) bool {
	want := originOf(publicURL)
	got := r.Header.Get("Origin")
	if got == "" {
		got = r.Header.Get("Referer")
	}
	return want != "" && originOf(got) == want
}

// originOf is the serialized origin (RFC 6454) of an absolute http(s) URL, or "".
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return ""
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); u.Scheme == "https" && p == "443" || u.Scheme == "http" && p == "80" {
		host = strings.ToLower(u.Hostname())
	}
	return u.Scheme + "://" + host
}

// redirect answers 302 with only a Location header: no body that would repeat the URL
// (and the state in it) as http.Redirect's HTML does.
func redirect(c *gin.Context, location string) {
	c.Header("Location", location)
	c.Status(http.StatusFound)
	c.Writer.WriteHeaderNow()
}

// handleCallback completes the flow the authorization response belongs to. A rejected
// callback stores nothing and sets no cookie.
func (a *connectAPI) handleCallback(c *gin.Context) {
	ctx := c.Request.Context()
	cookieName, _ := a.flowCookieName()
	nonce, _ := c.Cookie(cookieName)
	done, err := a.flows.Complete(ctx, c.Request.URL.Query(), nonce)
	if err != nil {
		fail(c, err)
		return
	}
	if done.ErrorCode != "" {
		finishFlow(c, done.Session.ReturnURL, url.Values{"status": {"error"}, "error": {done.ErrorCode}})
		return
	}
	typ := controlplane.EventConnectionCreated
	if done.Reconnected() {
		typ = controlplane.EventConnectionStatusChanged // active again
	}
	emitConnection(ctx, a.events, typ, done.Connection, "")
	finishFlow(c, done.Session.ReturnURL, url.Values{"connection_id": {done.Connection.ID}, "status": {"connected"}})
}

var resultPage = template.Must(template.New("result").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{if .OK}}Connected{{else}}Connection failed{{end}}</title></head>
<body><h1>{{if .OK}}Connected{{else}}Connection failed{{end}}</h1>
{{if .OK}}<p>The account is connected. You can close this window.</p><p>Connection: <code id="connection_id">{{.ConnectionID}}</code></p>
{{else}}<p>The provider did not grant access. You can close this window and try again.</p><p>Error: <code id="error">{{.Error}}</code></p>{{end}}
</body></html>`))

// finishFlow sends the browser to the return URL with the result appended to its query,
// or shows a small page when the session has none.
func finishFlow(c *gin.Context, returnURL string, result url.Values) {
	if returnURL == "" {
		c.Header("Content-Type", "text/html; charset=utf-8")
		c.Status(http.StatusOK)
		_ = resultPage.Execute(c.Writer, map[string]any{"OK": result.Get("status") == "connected",
			"ConnectionID": result.Get("connection_id"), "Error": result.Get("error")})
		return
	}
	sep := "?"
	if strings.Contains(returnURL, "?") {
		sep = "&"
	}
	redirect(c, returnURL+sep+result.Encode())
}

// The flow cookie carries the browser nonce of the connect flows. With an https public
// URL it is "__Host-authpipe_flow": Secure, HttpOnly, SameSite=Lax, Path=/ and no Domain,
// so no other host or plain-http page can set or read it. The __Host- prefix requires
// Secure, and browsers drop Secure cookies set over plain http; so when the public URL
// is plain http (which only the dev profile allows, for localhost/127.0.0.1), the cookie
// is "authpipe_flow" without the prefix and without Secure (docs/oauth.md).
const (
	flowCookieSecure = "__Host-authpipe_flow"
	flowCookieDev    = "authpipe_flow"
)

func (a *connectAPI) flowCookieName() (name string, secure bool) {
	if strings.HasPrefix(a.publicURL, "https://") {
		return flowCookieSecure, true
	}
	return flowCookieDev, false
}

package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/providers"
	"github.com/authpipe/authpipe-proxy/vault"
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
	// ConnectionConfig: the provider's connection_config values (typed by the end user on
	// the connect page when absent).
	ConnectionConfig map[string]string `json:"connection_config"`
}

func (r connectRequest) session(workspaceID string) oauthflow.SessionRequest {
	return oauthflow.SessionRequest{WorkspaceID: workspaceID, Provider: r.Provider, EndUserID: r.EndUserID,
		CallbackURL: r.CallbackURL, ReturnURL: r.ReturnURL, Scopes: r.Scopes, ConnectionConfig: r.ConnectionConfig}
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
	a.renderConnectPage(c, page, c.Query("display") == displayPopup)
}

// typedConfig is the connection_config the end user typed on the connect page: every
// posted config_<name> field with a value (oauthflow checks them).
func typedConfig(c *gin.Context) map[string]string {
	if err := c.Request.ParseForm(); err != nil {
		return nil
	}
	var out map[string]string
	for k, v := range c.Request.PostForm {
		name, ok := strings.CutPrefix(k, oauthflow.ConfigFieldPrefix)
		if !ok || len(v) != 1 || name == "" {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = strings.TrimSpace(v[0])
	}
	return out
}

// handleStart is the connect page's POST: after the origin check (the request comes from
// a page of the public URL) and the form token, the flow is started, the flow cookie set
// and the browser redirected to the provider. A refused POST consumes nothing.
func (a *connectAPI) handleStart(c *gin.Context) {
	if !sameOrigin(c.Request, a.publicURL) {
		fail(c, problem.ErrForbidden.WithDetail("the connect form must be posted from the connect page"))
		return
	}
	popup := c.PostForm("display") == displayPopup
	if typedForm(c) {
		a.submitCredential(c, popup)
		return
	}
	cookieName, secure := a.flowCookieName()
	nonce, _ := c.Cookie(cookieName)
	st, err := a.flows.Start(c.Request.Context(), c.Param("session"), c.PostForm("form_token"), nonce, typedConfig(c))
	if err != nil {
		fail(c, err)
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: cookieName, Value: st.Nonce, Path: "/", MaxAge: int(oauthflow.SessionLifetime / time.Second),
		Secure: secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if popup { // the callback ends this session's flow on the result page (finishFlow)
		http.SetCookie(c.Writer, &http.Cookie{Name: a.popupCookieName(), Value: c.Param("session"), Path: "/",
			MaxAge: int(oauthflow.SessionLifetime / time.Second), Secure: secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	redirect(c, st.AuthURL)
}

// typedForm reports a POST of the connect page's credential form (api_key, or basic's
// username and password) rather than its sign-in button.
func typedForm(c *gin.Context) bool {
	for _, name := range []string{"api_key", "username", "password"} {
		if _, ok := c.GetPostFormArray(name); ok {
			return true
		}
	}
	return false
}

// submitCredential is the connect page's API-key or username-and-password form: the
// credential goes from the end user's browser to the proxy, which stores it as POST
// /v1/connections does (oauthflow.NewTypedConnection checks it against the provider's mode).
func (a *connectAPI) submitCredential(c *gin.Context, popup bool) {
	cred := oauthflow.TypedCredential{APIKey: vault.NewSecret(c.PostForm("api_key"))}
	if _, ok := c.GetPostFormArray("username"); ok || c.PostForm("password") != "" {
		cred.Basic = oauthflow.BasicCredential{Username: vault.NewSecret(c.PostForm("username")),
			Password: vault.NewSecret(c.PostForm("password"))}
	}
	done, err := a.flows.SubmitCredential(c.Request.Context(), c.Param("session"), c.PostForm("form_token"), cred, typedConfig(c))
	if err != nil {
		fail(c, err)
		return
	}
	emitConnection(c.Request.Context(), a.events, controlplane.EventConnectionCreated, done.Connection, "")
	finishFlow(c, done.Session.ReturnURL, url.Values{"connection_id": {done.Connection.ID}, "status": {"connected"}}, popup)
}

// popupCookieName names the cookie that marks a flow started in a popup: its value is the
// session's id, so the callback of that session (and no other) ends on the result page.
func (a *connectAPI) popupCookieName() string {
	if _, secure := a.flowCookieName(); secure {
		return "__Host-authpipe_popup"
	}
	return "authpipe_popup"
}

// popupFlow reports whether session id's flow was started in a popup, and forgets it.
func (a *connectAPI) popupFlow(c *gin.Context, id string) bool {
	name := a.popupCookieName()
	v, err := c.Cookie(name)
	if err != nil || v != id {
		return false
	}
	_, secure := a.flowCookieName()
	http.SetCookie(c.Writer, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return true
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
	popup := a.popupFlow(c, done.Session.ID)
	if done.ErrorCode != "" {
		finishFlow(c, done.Session.ReturnURL, url.Values{"status": {"error"}, "error": {done.ErrorCode}}, popup)
		return
	}
	typ := controlplane.EventConnectionCreated
	if done.Reconnected() {
		typ = controlplane.EventConnectionStatusChanged // active again
	}
	emitConnection(ctx, a.events, typ, done.Connection, "")
	finishFlow(c, done.Session.ReturnURL, url.Values{"connection_id": {done.Connection.ID}, "status": {"connected"}}, popup)
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

package proxy

import (
	"html/template"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// The browser-facing routes (/v1/connect/..., /v1/oauth/callback) negotiate their errors
// (API.md, Connect): a browser — a request that accepts text/html before JSON — gets an
// HTML page with the same status, saying what happened and what to do next; an API client
// gets problem+json. Neither echoes anything from the request (no query value, no id).

// pageStrings are the end user's words, in one place for translation: a title and what to
// do next, by problem code ("" is the fallback).
var pageStrings = map[string]struct{ Title, Body string }{
	"invalid_state": {"This link has already been used or has expired",
		"Connect links work once and only for a few minutes. Go back to the application and start connecting again to get a new link."},
	"not_found": {"This connect link is not valid",
		"The link may be incomplete or may have expired. Go back to the application and start connecting again to get a new link."},
	"forbidden": {"This page was not opened the expected way",
		"For your security the connection must be started from the connect page itself. Go back to the application and start connecting again."},
	"issuer_mismatch": {"The sign-in could not be verified",
		"The answer did not come from the provider this connection expects, so nothing was stored. Go back to the application and try again."},
	"invalid_request": {"Something was missing from this request",
		"Nothing was stored. Go back to the application and start connecting again."},
	"rate_limited": {"Too many attempts",
		"Please wait a minute, then go back to the application and try again."},
	"": {"Something went wrong",
		"Nothing was stored. Go back to the application and try again; if it keeps happening, tell the application's support team."},
}

// connectStrings are the connect page's and the result page's words (connect_pages.go).
var connectStrings = map[string]string{
	"connect":       "Connect",
	"asks":          "asks to connect your",
	"account":       "account.",
	"signInIntro":   "You will sign in at",
	"continueTo":    "Continue to",
	"keyIntro":      "Paste your API key below. It goes to this secure service only, never to the application itself.",
	"keyLabel":      "API key",
	"keyHint":       "You can find or create an API key in your account settings at the provider.",
	"keySubmit":     "Connect",
	"basicIntro":    "Enter the username and password (or API token) for your account below. They go to this secure service only, never to the application itself.",
	"userLabel":     "Username",
	"passLabel":     "Password or API token",
	"basicHint":     "Some providers ask for your e-mail address as the username and an API token from your account settings as the password.",
	"connected":     "Connected",
	"connectedBody": "The account is connected. You can close this window.",
	"connection":    "Connection:",
	"failed":        "Connection failed",
	"failedBody":    "The provider did not grant access. You can close this window and try again.",
	"error":         "Error:",
}

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>{{.Title}}</title>
<style nonce="{{.Nonce}}">body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}code{color:#555}</style></head>
<body><main><h1>{{.Title}}</h1><p>{{.Body}}</p><p><small>Error code: <code id="code">{{.Code}}</code></small></p></main></body></html>`))

// prefersHTML reports whether the request's Accept header ranks text/html above every JSON
// type (by q, then by order): what a browser sends, and what no API client asks for.
func prefersHTML(r *http.Request) bool {
	bestHTML, bestJSON := -1.0, -1.0
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		switch {
		case mt == "text/html" || mt == "application/xhtml+xml":
			if q > bestHTML {
				bestHTML = q
			}
		case mt == "application/json" || mt == "application/problem+json":
			if q > bestJSON {
				bestJSON = q
			}
		}
	}
	return bestHTML > 0 && bestHTML >= bestJSON && !(bestHTML == bestJSON && jsonFirst(r.Header.Get("Accept")))
}

// jsonFirst reports whether a JSON type is listed before text/html (a tie in q goes to
// the one listed first).
func jsonFirst(accept string) bool {
	j := strings.Index(accept, "json")
	h := strings.Index(accept, "text/html")
	return j >= 0 && (h < 0 || j < h)
}

// browserKey marks a request of a browser-facing route (browserRoute).
const browserKey = "authpipe.browser_route"

// browserRoute marks the routes an end user's browser lands on, so that the error
// middleware answers their errors with a page when the browser prefers one.
func browserRoute(c *gin.Context) { c.Set(browserKey, true) }

// writePage is writeProblem for a browser: the same status, a page in the end user's words.
func writePage(c *gin.Context, p *problem.Problem) {
	s, ok := pageStrings[p.Code]
	if !ok {
		s = pageStrings[""]
	}
	nonce := ids.Random(16)
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
	if p.RetryAfter() > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfter()))
	}
	c.Status(p.Status)
	_ = errorPage.Execute(c.Writer, map[string]string{"Nonce": nonce, "Title": s.Title, "Body": s.Body, "Code": p.Code})
}

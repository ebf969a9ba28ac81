package oauthtest

import (
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// The proxy's connect page (GET /v1/connect/{session}) as a browser goes through it: read
// the page, then POST its form (the form token) back to the same URL from the page's
// origin. Tests that drive the connect flow without a real browser use these.

var formTokenRE = regexp.MustCompile(`name="form_token" value="([^"]*)"`)

// ConnectFormToken returns the form token of a connect page's HTML.
func ConnectFormToken(page string) (string, bool) {
	m := formTokenRE.FindStringSubmatch(page)
	if m == nil {
		return "", false
	}
	return html.UnescapeString(m[1]), true
}

// ConnectPost is the POST of the connect page at pageURL with form token token, as a
// browser on origin sends it.
func ConnectPost(pageURL, token, origin string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, pageURL, strings.NewReader(url.Values{"form_token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return req
}

// StartConnect reads the connect page at pageURL with c and posts its form from origin
// (empty: pageURL's own origin, as a browser that opened it does). It returns the POST's
// response (with c's redirect policy applied), whose body the caller closes.
func StartConnect(c *http.Client, pageURL, origin string) (*http.Response, error) {
	res, err := c.Get(pageURL)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, errors.New("oauthtest: connect page answered " + res.Status + ": " + string(body))
	}
	token, ok := ConnectFormToken(string(body))
	if !ok {
		return nil, errors.New("oauthtest: no form token on the connect page")
	}
	if origin == "" {
		u, err := url.Parse(pageURL)
		if err != nil {
			return nil, err
		}
		origin = u.Scheme + "://" + u.Host
	}
	return c.Do(ConnectPost(pageURL, token, origin))
}

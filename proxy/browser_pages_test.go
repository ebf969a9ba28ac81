package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const chromeAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"

// An end user who lands on a dead connect link, or reloads the callback, sees a page in
// words, not a document for machines; an API client still gets problem+json; nothing from
// the request is echoed.
func TestBrowserRoutesAnswerBrowsersWithPages(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	get := func(path, accept string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("GET", h.srv.URL+path, nil)
		require.NoError(t, err)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		res, err := h.srv.Client().Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	const marker = "ECHOMARKER<script>alert(1)</script>"
	for _, tc := range []struct {
		path, title string
		status      int
	}{
		{"/v1/connect/cs_" + strings.Repeat("a", 52), "This connect link is not valid", 404},
		{"/v1/connect/ECHOMARKER", "This connect link is not valid", 404},
		{"/v1/oauth/callback?code=" + marker + "&state=" + marker, "already been used or has expired", 400},
	} {
		res, body := get(tc.path, chromeAccept)
		require.Equal(t, tc.status, res.StatusCode, tc.path)
		require.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"), tc.path)
		require.Contains(t, body, tc.title)
		require.Contains(t, body, "Go back to the application")
		require.NotContains(t, body, "ECHOMARKER", "nothing from the request is echoed")
		require.NotContains(t, body, "<script>")
		require.Contains(t, res.Header.Get("Content-Security-Policy"), "default-src 'none'")
		require.Equal(t, "no-store", res.Header.Get("Cache-Control"))

		for _, accept := range []string{"application/json", "", "*/*", "application/json, text/html", "text/html;q=0.5, application/problem+json"} {
			res, body := get(tc.path, accept)
			require.Equal(t, tc.status, res.StatusCode)
			require.Equal(t, "application/problem+json", strings.Split(res.Header.Get("Content-Type"), ";")[0], "Accept %q", accept)
			require.Contains(t, body, `"code":"`)
			require.NotContains(t, body, "ECHOMARKER")
		}
	}
	// The API's own routes never answer with a page.
	res, body := get("/v1/connections", chromeAccept)
	require.Equal(t, 401, res.StatusCode)
	require.Contains(t, body, `"code":"unauthorized"`)
}

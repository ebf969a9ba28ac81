package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/proxy"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// sendForm posts body as a form to path, with contentType and the optional key.
func sendForm(t *testing.T, h *harness, method, path, key, contentType string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	hdr := http.Header{"Content-Type": {contentType}}
	if key != "" {
		hdr.Set("Authorization", "Bearer "+key)
	}
	return send(t, h.srv.URL, method, path, hdr, body)
}

func requireProblem(t *testing.T, res *http.Response, body []byte, status int, code string) {
	t.Helper()
	require.Equal(t, status, res.StatusCode, "body: %s", body)
	require.Equal(t, "application/problem+json", res.Header.Get("Content-Type"))
	require.Contains(t, string(body), `"code":"`+code+`"`)
}

func TestTokenInFormBodyRefused(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	const form = "application/x-www-form-urlencoded"
	for _, body := range []string{"access_token=" + bootstrapKey, "name=k&ACCESS%5FTOKEN=" + bootstrapKey} {
		for _, ct := range []string{form, "Application/X-WWW-Form-Urlencoded; charset=utf-8", " " + form + " ;q=1"} {
			// Before authentication: with no key, with a valid key, on any of the API's
			// routes, the unauthenticated browser routes included.
			for _, r := range []struct{ method, path, key string }{
				{"POST", "/v1/api-keys", ""},
				{"POST", "/v1/api-keys", bootstrapKey},
				{"GET", "/v1/connections", bootstrapKey},
				{"GET", "/v1/oauth/callback?code=x&state=y", ""},
				{"POST", "/healthz", ""},
			} {
				res, raw := sendForm(t, h, r.method, r.path, r.key, ct, strings.NewReader(body))
				requireProblem(t, res, raw, http.StatusBadRequest, "token_in_url")
				require.NotContains(t, string(raw), bootstrapKey)
			}
			// Chunked (no Content-Length): the same.
			res, raw := sendForm(t, h, "POST", "/v1/api-keys", bootstrapKey, ct, io.MultiReader(strings.NewReader(body)))
			requireProblem(t, res, raw, http.StatusBadRequest, "token_in_url")
		}
	}
	require.NotContains(t, h.logs.String(), bootstrapKey)

	// A form without the parameter reaches the handler, which wants JSON: 400, not a crash.
	res, raw := sendForm(t, h, "POST", "/v1/api-keys", bootstrapKey, form, strings.NewReader("name=k&scopes=admin"))
	requireProblem(t, res, raw, http.StatusBadRequest, "invalid_request")
	// The handler reads the very body that was sent, after the edge read it (chunked too).
	res, raw = sendForm(t, h, "POST", "/v1/api-keys", bootstrapKey, form,
		io.MultiReader(strings.NewReader(`{"name":"form-typed","scopes":["tokens:read"]}`)))
	require.Equal(t, http.StatusCreated, res.StatusCode, "body: %s", raw)
	require.Contains(t, string(raw), `"scopes":["tokens:read"]`)
	// In a JSON body access_token is just a field name: the edge leaves JSON alone.
	res, raw = sendForm(t, h, "POST", "/v1/api-keys", bootstrapKey, "application/json",
		strings.NewReader(`{"name":"k","scopes":["tokens:read"],"access_token":"x"}`))
	require.Equal(t, http.StatusCreated, res.StatusCode, "body: %s", raw)
	// A JSON body that happens to look like a form with the parameter is JSON.
	res, raw = sendForm(t, h, "POST", "/v1/api-keys", bootstrapKey, "application/json",
		strings.NewReader(`access_token=x`))
	requireProblem(t, res, raw, http.StatusBadRequest, "invalid_request")
	// The limit still holds while the form is read: over 1 MiB is 413, chunked or not.
	big := "a=" + strings.Repeat("x", proxy.MaxBodyBytes) + "&access_token=x"
	res, raw = sendForm(t, h, "POST", "/v1/api-keys", bootstrapKey, form, strings.NewReader(big))
	requireProblem(t, res, raw, http.StatusRequestEntityTooLarge, "payload_too_large")
	res, raw = sendForm(t, h, "POST", "/v1/api-keys", bootstrapKey, form, io.MultiReader(strings.NewReader(big)))
	requireProblem(t, res, raw, http.StatusRequestEntityTooLarge, "payload_too_large")
}

// The forwarding route streams its body to the provider untouched: form bodies belong to
// the provider's API, and the edge does not buffer them to look inside.
func TestForwardFormBodyNotInspected(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	up := newUpstream(t)
	id := echoProvider(t, h, up.URL+"/base/")
	reader := h.createKey("tokens:read")
	body := "amount=100&access_token=provider-defined-parameter"
	hdr := bearerHdr(reader, "Content-Type", "application/x-www-form-urlencoded")
	res, raw := send(t, h.srv.URL, "POST", "/v1/proxy/"+id+"/echo", hdr, io.MultiReader(strings.NewReader(body)))
	require.Equal(t, http.StatusOK, res.StatusCode, "body: %s", raw)
	require.Equal(t, body, string(up.last(t).Body))
	// In the URL it is refused there too.
	res, raw = send(t, h.srv.URL, "POST", "/v1/proxy/"+id+"/echo?access_token=x", hdr, strings.NewReader("a=1"))
	requireProblem(t, res, raw, http.StatusBadRequest, "token_in_url")
}

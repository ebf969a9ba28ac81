package authpipe

import (
	"net/http"
	"net/url"
	"strings"
)

// Transport returns an http.RoundTripper that sends each request through the proxy's
// forwarding endpoint (/v1/proxy/{connection}/{path}): the proxy injects the connection's
// credential, so the token never enters the application's process. The request URL's
// path and query are kept and its scheme and host ignored — the proxy sends the call to
// the connection's API base URL — so
//
//	hc := &http.Client{Transport: c.Transport("conn_123")}
//	res, err := hc.Get("https://api.github.com/user") // GET <api base>/user via the proxy
//
// The request's own Authorization and Cookie headers are dropped by the proxy.
func (c *Client) Transport(connectionID string) http.RoundTripper {
	return &transport{c: c, id: connectionID}
}

type transport struct {
	c  *Client
	id string
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	path := req.URL.EscapedPath()
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.Parse(t.c.base.String() + "/v1/proxy/" + url.PathEscape(t.id) + path)
	if err != nil {
		return nil, err
	}
	u.RawQuery = req.URL.RawQuery
	out := req.Clone(req.Context())
	out.URL = u
	out.Host = ""
	out.RequestURI = ""
	out.Header.Del("Authorization")
	out.Header.Del("Cookie")
	if err := t.c.authorize(out, ""); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	rt := t.c.hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	return rt.RoundTrip(out)
}

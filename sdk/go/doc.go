// Package authpipe is the Go client of authpipe-proxy: it reads fresh provider tokens,
// forwards API calls through the proxy so that tokens never enter the application's process,
// manages connect sessions and connections, and verifies the proxy's webhooks.
//
// It depends on the standard library and golang.org/x/oauth2 only.
//
//	c, err := authpipe.New("https://authpipe.internal:8080", authpipe.WithAPIKey(os.Getenv("AUTHPIPE_API_KEY")))
//	tok, err := c.TokenSource("conn_123", authpipe.MinValidity(5*time.Minute)).Token()
//
// Errors from the proxy are *Problem values with the stable code of the proxy's
// problem+json answers; IsNeedsReauth, IsDisconnected, IsOriginChanged and IsRateLimited
// name the ones an application acts on.
package authpipe

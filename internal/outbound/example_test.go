package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
)

// Configuration time: a tenant's token_url is checked before it is stored.
func ExampleCheckURL() {
	for _, u := range []string{
		"https://github.com/login/oauth/access_token",
		"http://169.254.169.254/latest/meta-data/",
		"http://2130706433/token",
		"http://127.0.0.1:9000/token",
	} {
		err := outbound.CheckURL(u, nil)
		fmt.Println(errors.Is(err, outbound.ErrUnsafeURL))
	}
	// The operator allowed loopback (AUTHPIPE_OUTBOUND_ALLOW_CIDRS=127.0.0.0/8):
	fmt.Println(outbound.CheckURL("http://127.0.0.1:9000/token", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}))
	// Output:
	// false
	// true
	// true
	// true
	// <nil>
}

// Use time: one Client per policy; token calls never follow redirects.
func ExampleClient_TokenClient() {
	c, err := outbound.New(outbound.Policy{})
	if err != nil {
		panic(err)
	}
	hc := c.TokenClient()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://10.0.0.1/token?code=abc", nil)
	_, err = hc.Do(req)
	fmt.Println(errors.Is(err, outbound.ErrUnsafeURL))
	fmt.Println(outbound.Redact(err))
	// Output:
	// true
	// Post "http://10.0.0.1/token": outbound: refusing to connect to 10.0.0.1: private (RFC 1918)
}

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

// serveBareCmd is the helper process external starts for what the server is measured
// against: -upstream-addr, a local upstream answering -size bytes of JSON to everything;
// -token-addr, a bare net/http server writing -body-file (the token endpoint's own
// answer) with the same Content-Type; -proxy-addr, a bare httputil.ReverseProxy to
// -proxy-to that adds the same X-Api-Key header the forwarding proxy adds. The reverse
// proxy's transport is Go's default with MaxIdleConnsPerHost raised to 64 (the default 2
// would make the baseline churn connections at 32 clients). It serves until killed.
func serveBareCmd(ctx context.Context, args []string, _ io.Writer) error {
	fs := flag.NewFlagSet("serve-bare", flag.ContinueOnError)
	upAddr := fs.String("upstream-addr", "", "serve the upstream here")
	size := fs.Int("size", 512, "upstream body bytes")
	tokAddr := fs.String("token-addr", "", "serve the bare token body here")
	bodyFile := fs.String("body-file", "", "the body the bare token server writes")
	rpAddr := fs.String("proxy-addr", "", "serve the bare reverse proxy here")
	rpTo := fs.String("proxy-to", "", "the reverse proxy's upstream URL")
	apiKey := fs.String("api-key", "", "the header X-Api-Key the reverse proxy adds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	errc := make(chan error, 3)
	serve := func(addr string, h http.Handler) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			errc <- err
			return
		}
		go func() { errc <- (&http.Server{Handler: h}).Serve(ln) }()
	}
	if *upAddr != "" {
		doc := append(append([]byte(`{"data":"`), bytes.Repeat([]byte("x"), max(0, *size-11))...), `"}`...)
		serve(*upAddr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(doc)
		}))
	}
	if *tokAddr != "" {
		body, err := os.ReadFile(*bodyFile)
		if err != nil {
			return err
		}
		serve(*tokAddr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = w.Write(body)
		}))
	}
	if *rpAddr != "" {
		to, err := url.Parse(*rpTo)
		if err != nil || to.Host == "" {
			return errors.New("-proxy-to must be a URL")
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		rp := &httputil.ReverseProxy{Transport: tr, Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(to)
			r.Out.Header.Del("Authorization")
			r.Out.Header.Set("X-Api-Key", *apiKey)
		}}
		serve(*rpAddr, rp)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil
	}
}

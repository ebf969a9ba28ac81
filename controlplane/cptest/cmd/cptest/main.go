// Command cptest runs the reference control plane for local development:
//
//	go run ./controlplane/cptest/cmd/cptest -addr 127.0.0.1:9090 -config config.json
//
// It prints the settings to give authpipe-proxy (URL, token, pinned public key), serves
// the ConfigDocument in -config (JSON) signed with a key made at start, and prints each
// event it receives. It keeps everything in memory; never use it in production.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/controlplane/cptest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cptest:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:9090", "listen address")
	token := flag.String("token", "", "bearer token to accept (default: a random one, printed)")
	cfgPath := flag.String("config", "", "JSON ConfigDocument to sign and serve (default: none, 404)")
	flag.Parse()
	if *token == "" {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		*token = "cpt_" + base64.RawURLEncoding.EncodeToString(b)
	}
	s, err := cptest.New(*token)
	if err != nil {
		return err
	}
	if *cfgPath != "" {
		raw, err := os.ReadFile(*cfgPath)
		if err != nil {
			return err
		}
		var doc controlplane.ConfigDocument
		if err := json.Unmarshal(raw, &doc); err != nil {
			return fmt.Errorf("%s: %w", *cfgPath, err)
		}
		if err := s.SetConfig(doc); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("AUTHPIPE_CONTROL_PLANE_URL=http://%s\nAUTHPIPE_CONTROL_PLANE_TOKEN=%s\nAUTHPIPE_CONTROL_PLANE_PUBLIC_KEY=%s\n",
		ln.Addr(), *token, s.PublicKeyBase64())
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		seen := 0
		for ctx.Err() == nil {
			evs, _ := s.WaitEvents(ctx, func(evs []controlplane.Event) bool { return len(evs) > seen })
			for _, e := range evs[min(seen, len(evs)):] {
				b, _ := json.Marshal(e)
				fmt.Println(string(b))
			}
			seen = len(evs)
		}
	}()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

package authpipe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"golang.org/x/oauth2"

	authpipe "github.com/authpipe/authpipe-proxy/sdk/go"
)

// fakeProxy stands in for authpipe-proxy in the examples.
func fakeProxy() *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/connections/conn_123/token", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"connection_id":"conn_123","credential_type":"oauth2","access_token":"gho_example","token_type":"Bearer","expires_at":%q,"scopes":["repo"]}`,
			time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	})
	mux.HandleFunc("GET /v1/connections/conn_gone/token", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(409)
		fmt.Fprint(w, `{"type":"https://authpipe.dev/problems/needs_reauth","title":"The connection needs to be re-authorized","status":409,"code":"needs_reauth"}`)
	})
	mux.HandleFunc("GET /v1/proxy/conn_123/user", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"login":"octocat"}`)
	})
	mux.HandleFunc("POST /v1/connect/sessions", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(201)
		fmt.Fprint(w, `{"id":"cs_1","connect_url":"https://authpipe.example.com/v1/connect/cs_1","expires_at":"2030-01-01T00:10:00Z"}`)
	})
	mux.HandleFunc("GET /v1/connections", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("cursor") == "" {
			fmt.Fprint(w, `{"connections":[{"id":"conn_1","provider":"github","status":"active"}],"next_cursor":"c2"}`)
			return
		}
		fmt.Fprint(w, `{"connections":[{"id":"conn_2","provider":"github","status":"needs_reauth"}],"next_cursor":""}`)
	})
	return httptest.NewServer(mux)
}

// A fresh token in one line, shared by every goroutine and reused until 5 minutes before
// it expires.
func ExampleClient_TokenSource() {
	srv := fakeProxy()
	defer srv.Close()
	c, err := authpipe.New(srv.URL, authpipe.WithAPIKey("ap_exampleexampleexampleexampleexample"))
	if err != nil {
		log.Fatal(err)
	}

	tok, err := c.TokenSource("conn_123", authpipe.MinValidity(5*time.Minute)).Token()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.TokenType, tok.AccessToken)

	// Or hand it to anything that takes an oauth2.TokenSource.
	_ = oauth2.NewClient(context.Background(), c.TokenSource("conn_123"))
	// Output: Bearer gho_example
}

// Call the provider's API through the proxy: the token never enters this process.
func ExampleClient_Transport() {
	srv := fakeProxy()
	defer srv.Close()
	c, _ := authpipe.New(srv.URL, authpipe.WithAPIKey("ap_exampleexampleexampleexampleexample"))

	github := &http.Client{Transport: c.Transport("conn_123")}
	res, err := github.Get("https://api.github.com/user")
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Println(res.StatusCode, string(body))
	// Output: 200 {"login":"octocat"}
}

// Act on the codes an application handles: here, send the end user to reconnect.
func ExampleIsNeedsReauth() {
	srv := fakeProxy()
	defer srv.Close()
	c, _ := authpipe.New(srv.URL, authpipe.WithAPIKey("ap_exampleexampleexampleexampleexample"))

	_, err := c.Token(context.Background(), "conn_gone", 0)
	var p *authpipe.Problem
	switch {
	case authpipe.IsNeedsReauth(err):
		fmt.Println("ask the end user to reconnect")
	case errors.As(err, &p):
		fmt.Println("proxy said", p.Code)
	}
	// Output: ask the end user to reconnect
}

// Start a connect flow and send the end user's browser to the link.
func ExampleClient_CreateConnectSession() {
	srv := fakeProxy()
	defer srv.Close()
	c, _ := authpipe.New(srv.URL, authpipe.WithAPIKey("ap_exampleexampleexampleexampleexample"))

	s, err := c.CreateConnectSession(context.Background(), authpipe.ConnectSessionRequest{
		Provider: "github", EndUserID: "user-42",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.ConnectURL)
	// Output: https://authpipe.example.com/v1/connect/cs_1
}

// Walk every connection, page by page.
func ExampleClient_Connections() {
	srv := fakeProxy()
	defer srv.Close()
	c, _ := authpipe.New(srv.URL, authpipe.WithAPIKey("ap_exampleexampleexampleexampleexample"))

	for conn, err := range c.Connections(context.Background(), authpipe.ListOptions{Provider: "github"}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(conn.ID, conn.Status)
	}
	// Output:
	// conn_1 active
	// conn_2 needs_reauth
}

// Verify the proxy's webhooks before trusting them; during a rotation of the signing
// secret, list both secrets.
func ExampleWebhookVerifier_Handler() {
	v := authpipe.WebhookVerifier{Secrets: []string{os.Getenv("AUTHPIPE_WEBHOOK_SECRET")}}
	http.Handle("/hooks/authpipe", v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// r.Body is the verified delivery.
	})))
}

// Bind an API key to a key only this process holds (RFC 9449 DPoP): create the API key
// with "dpop_jkt": key.Thumbprint(), then every call carries a fresh proof.
func ExampleWithDPoP() {
	key, err := authpipe.NewDPoPKey()
	if err != nil {
		log.Fatal(err)
	}
	_, _ = authpipe.New("https://authpipe.internal", authpipe.WithAPIKey(os.Getenv("AUTHPIPE_API_KEY")), authpipe.WithDPoP(key))
	fmt.Println(len(key.Thumbprint()))
	// Output: 43
}

package authpipe

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testKey = "ap_testkeytestkeytestkeytestkeytestkey01"

func newTestClient(t *testing.T, h http.HandlerFunc, opts ...Option) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, append([]Option{WithAPIKey(testKey)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeProblem(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"https://authpipe.dev/problems/%s","title":"t","status":%d,"code":%q,"detail":"d"}`, code, status, code)
}

func TestNewRefusesBadInput(t *testing.T) {
	for _, base := range []string{"", "ftp://x", "http://", "https://x/?q=1", "://", "http://authpipe.internal:8080"} {
		if _, err := New(base, WithAPIKey(testKey)); err == nil {
			t.Errorf("New(%q) accepted", base)
		}
	}
	if _, err := New("https://x"); err == nil {
		t.Error("New without an API key accepted")
	}
}

func TestTokenSendsKeyAndMinValidity(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testKey || r.URL.Path != "/v1/connections/conn_a%2Fb/token" && r.URL.EscapedPath() != "/v1/connections/conn_a%2Fb/token" {
			writeProblem(w, 401, "unauthorized")
			return
		}
		if r.URL.Query().Get("min_validity") != "300" {
			writeProblem(w, 400, "invalid_request")
			return
		}
		fmt.Fprint(w, `{"connection_id":"conn_a/b","credential_type":"oauth2","access_token":"tok","token_type":"Bearer","expires_at":"2030-01-01T00:00:00Z","scopes":["repo"],"metadata":{"instance_url":"https://x.example"}}`)
	})
	tok, err := c.Token(context.Background(), "conn_a/b", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "tok" || tok.ExpiresAt.Year() != 2030 || tok.Metadata["instance_url"] != "https://x.example" {
		t.Fatalf("token = %+v", tok)
	}
}

// TestMintedTokens: the machine modes' tokens (credential_type is the auth mode) decode as
// an OAuth access token does, and their TokenSource hands out the access token.
func TestMintedTokens(t *testing.T) {
	for _, typ := range []string{"oauth2_client_credentials", "jwt_bearer", "github_app"} {
		c := newTestClient(t, func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, `{"connection_id":"conn_m","credential_type":%q,"access_token":"minted-tok","token_type":"Bearer","expires_at":"2030-01-01T00:00:00Z","scopes":["read"]}`, typ)
		})
		tok, err := c.Token(context.Background(), "conn_m", 0)
		if err != nil {
			t.Fatal(err)
		}
		if tok.CredentialType != typ || tok.AccessToken != "minted-tok" || tok.ExpiresAt.Year() != 2030 || !tok.Minted() {
			t.Fatalf("%s: token = %#v", typ, *tok)
		}
		ot, err := c.TokenSource("conn_m").Token()
		if err != nil || ot.AccessToken != "minted-tok" || ot.Extra("credential_type") != typ {
			t.Fatalf("%s: TokenSource = %v, %v", typ, ot, err)
		}
	}
}

// TestBasicToken: a basic connection's token decodes into Username and Password; its
// TokenSource refuses (a pair is no bearer token) rather than hand out an empty token.
func TestBasicToken(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"connection_id":"conn_b","credential_type":"basic","username":"ann@example.com","password":"pw:1","scopes":[]}`)
	})
	tok, err := c.Token(context.Background(), "conn_b", 0)
	if err != nil {
		t.Fatal(err)
	}
	if tok.CredentialType != "basic" || tok.Username != "ann@example.com" || tok.Password != "pw:1" || tok.AccessToken != "" {
		t.Fatalf("token = %#v", *tok)
	}
	if _, err := c.TokenSource("conn_b").Token(); !errors.Is(err, ErrBasicCredential) {
		t.Fatalf("TokenSource err = %v", err)
	}
}

func TestTokenNeverPrintsItsSecret(t *testing.T) {
	tok := Token{ConnectionID: "conn_1", CredentialType: "oauth2", AccessToken: "gho_SENTINEL", APIKey: "sk_SENTINEL",
		Username: "SENTINEL-user", Password: "SENTINEL-password"}
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%+v", tok), fmt.Sprintf("%#v", tok), fmt.Sprintf("%v", &tok)} {
		if strings.Contains(s, "SENTINEL") {
			t.Fatalf("printed a secret: %s", s)
		}
	}
	var buf strings.Builder
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("read", "token", tok)
	if strings.Contains(buf.String(), "SENTINEL") {
		t.Fatalf("logged a secret: %s", buf.String())
	}
}

func TestProblemsAreTyped(t *testing.T) {
	codes := map[string]int{"needs_reauth": 409, "disconnected": 410, "origin_changed": 409, "rate_limited": 429}
	for code, status := range codes {
		c := newTestClient(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.Header().Set("X-Request-Id", "req-1")
			writeProblem(w, status, code)
		})
		_, err := c.Token(context.Background(), "conn_1", 0)
		var p *Problem
		if !errors.As(err, &p) || p.Code != code || p.Status != status || p.RequestID != "req-1" {
			t.Fatalf("%s: err = %#v", code, err)
		}
		checks := map[string]bool{"needs_reauth": IsNeedsReauth(err), "disconnected": IsDisconnected(err), "origin_changed": IsOriginChanged(err)}
		wait, limited := IsRateLimited(err)
		checks["rate_limited"] = limited && wait == 7*time.Second
		for name, got := range checks {
			if got != (name == code) {
				t.Errorf("%s: Is%s = %v", code, name, got)
			}
		}
	}
	c := newTestClient(t, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "<html>", 502) })
	_, err := c.Token(context.Background(), "conn_1", 0)
	var p *Problem
	if !errors.As(err, &p) || p.Code != "http_502" {
		t.Fatalf("a non-problem answer: %#v", err)
	}
}

func TestRetriesIdempotentCallsOn503WithRetryAfter(t *testing.T) {
	var n atomic.Int32
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			w.Header().Set("Retry-After", "0")
			writeProblem(w, 503, "kms_unavailable")
			return
		}
		fmt.Fprint(w, `{"id":"conn_1","status":"active"}`)
	})
	conn, err := c.Connection(context.Background(), "conn_1")
	if err != nil || conn.ID != "conn_1" || n.Load() != 3 {
		t.Fatalf("conn=%v err=%v calls=%d", conn, err, n.Load())
	}

	// A POST is not retried; a 503 without Retry-After is not retried either.
	n.Store(0)
	if _, err := c.CreateConnection(context.Background(), NewConnection{Provider: "stripe", EndUserID: "u", APIKey: "k"}); err == nil || n.Load() != 1 {
		t.Fatalf("POST: err=%v calls=%d", err, n.Load())
	}
	var m atomic.Int32
	c = newTestClient(t, func(w http.ResponseWriter, _ *http.Request) { m.Add(1); writeProblem(w, 503, "database_unavailable") })
	if _, err := c.Connection(context.Background(), "conn_1"); err == nil || m.Load() != 1 {
		t.Fatalf("no Retry-After: err=%v calls=%d", err, m.Load())
	}
	// Bounded: a Retry-After longer than the longest wait ends the retries at once.
	m.Store(0)
	c = newTestClient(t, func(w http.ResponseWriter, _ *http.Request) {
		m.Add(1)
		w.Header().Set("Retry-After", "3600")
		writeProblem(w, 503, "refresh_unavailable")
	})
	if _, err := c.Connection(context.Background(), "conn_1"); err == nil || m.Load() != 1 {
		t.Fatalf("long Retry-After: err=%v calls=%d", err, m.Load())
	}
}

func TestTokenSourceSharesOneRequestAndReusesUntilMinValidity(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	var exp atomic.Value
	exp.Store(time.Now().Add(time.Hour))
	c := newTestClient(t, func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		<-release
		fmt.Fprintf(w, `{"connection_id":"conn_1","credential_type":"oauth2","access_token":"tok-%d","token_type":"Bearer","expires_at":%q}`,
			calls.Load(), exp.Load().(time.Time).UTC().Format(time.RFC3339))
	})
	ts := c.TokenSource("conn_1", MinValidity(10*time.Minute))
	var wg sync.WaitGroup
	toks := make([]string, 16)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := ts.Token()
			if err != nil {
				t.Error(err)
				return
			}
			toks[i] = tok.AccessToken
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("16 concurrent callers made %d requests", calls.Load())
	}
	for _, tok := range toks {
		if tok != "tok-1" {
			t.Fatalf("tokens = %v", toks)
		}
	}
	if tok, _ := ts.Token(); tok.AccessToken != "tok-1" || calls.Load() != 1 {
		t.Fatal("a token valid beyond min_validity was not reused")
	}
	// A token inside min_validity is fetched again.
	exp.Store(time.Now().Add(5 * time.Minute))
	ts2 := c.TokenSource("conn_1", MinValidity(10*time.Minute))
	if _, err := ts2.Token(); err != nil {
		t.Fatal(err)
	}
	if _, err := ts2.Token(); err != nil || calls.Load() != 3 {
		t.Fatalf("a token expiring within min_validity was reused (calls=%d, err=%v)", calls.Load(), err)
	}
}

func TestConnectionsPaginates(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("provider") != "github" || r.URL.Query().Get("limit") != "2" {
			writeProblem(w, 400, "invalid_request")
			return
		}
		switch r.URL.Query().Get("cursor") {
		case "":
			fmt.Fprint(w, `{"connections":[{"id":"c1"},{"id":"c2"}],"next_cursor":"n1"}`)
		case "n1":
			fmt.Fprint(w, `{"connections":[{"id":"c3"}],"next_cursor":""}`)
		}
	})
	var ids []string
	for conn, err := range c.Connections(context.Background(), ListOptions{Provider: "github", PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, conn.ID)
	}
	if strings.Join(ids, ",") != "c1,c2,c3" {
		t.Fatalf("ids = %v", ids)
	}
	for _, err := range c.Connections(context.Background(), ListOptions{Provider: "gitlab"}) {
		if err == nil {
			t.Fatal("an error page yielded no error")
		}
	}
}

func TestTransportGoesThroughTheProxy(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testKey || r.Header.Get("Cookie") != "" {
			writeProblem(w, 401, "unauthorized")
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s?%s %s", r.Method, r.URL.EscapedPath(), r.URL.RawQuery, body)
	})
	hc := &http.Client{Transport: c.Transport("conn_1")}
	req, _ := http.NewRequest("POST", "https://api.example.com/repos/a%2Fb/issues?state=open", strings.NewReader("hi"))
	req.Header.Set("Authorization", "Bearer app-token")
	req.Header.Set("Cookie", "s=1")
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(got) != "POST /v1/proxy/conn_1/repos/a%2Fb/issues?state=open hi" {
		t.Fatalf("proxy saw %q", got)
	}
}

func TestDPoPProofsVerify(t *testing.T) {
	key, err := NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	var nonces atomic.Int32
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		proof := r.Header.Get("DPoP")
		claims, err := verifyES256(proof, key.Thumbprint())
		if err != nil || r.Header.Get("Authorization") != "DPoP "+testKey {
			writeProblem(w, 401, "invalid_dpop_proof")
			return
		}
		ath := sha256.Sum256([]byte(testKey))
		if claims["htm"] != "GET" || claims["htu"] != "http://"+r.Host+"/v1/connections/conn_1" ||
			claims["ath"] != base64.RawURLEncoding.EncodeToString(ath[:]) || claims["jti"] == "" {
			writeProblem(w, 401, "invalid_dpop_proof")
			return
		}
		if claims["nonce"] != "n-1" {
			nonces.Add(1)
			w.Header().Set("DPoP-Nonce", "n-1")
			writeProblem(w, 401, "use_dpop_nonce")
			return
		}
		fmt.Fprint(w, `{"id":"conn_1"}`)
	}, WithDPoP(key))
	if _, err := c.Connection(context.Background(), "conn_1"); err != nil {
		t.Fatal(err)
	}
	if nonces.Load() != 1 {
		t.Fatalf("nonce challenges = %d", nonces.Load())
	}
}

// verifyES256 checks a proof's signature with its embedded jwk, and the jwk's thumbprint.
func verifyES256(jws, wantJKT string) (map[string]any, error) {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWS")
	}
	dec := base64.RawURLEncoding.DecodeString
	hb, _ := dec(parts[0])
	var h struct {
		Typ, Alg string
		JWK      map[string]string
	}
	if err := json.Unmarshal(hb, &h); err != nil || h.Typ != "dpop+jwt" || h.Alg != "ES256" {
		return nil, errors.New("bad header")
	}
	x, _ := dec(h.JWK["x"])
	y, _ := dec(h.JWK["y"])
	k, err := DPoPKeyFrom(nil)
	_ = k
	if err == nil {
		return nil, errors.New("nil key accepted")
	}
	canon := `{"crv":"P-256","kty":"EC","x":"` + h.JWK["x"] + `","y":"` + h.JWK["y"] + `"}`
	sum := sha256.Sum256([]byte(canon))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != wantJKT {
		return nil, errors.New("thumbprint")
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(ellipticP256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, err
	}
	sig, _ := dec(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if len(sig) != 64 || !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, errors.New("signature")
	}
	pb, _ := dec(parts[1])
	var claims map[string]any
	return claims, json.Unmarshal(pb, &claims)
}

func ellipticP256() elliptic.Curve { return elliptic.P256() }

package authpipe

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
)

// TestNarrowedToken: the narrowing goes as the proxy's query parameters (repositories
// comma-separated, permissions as sorted name:access pairs); a TokenSource with Narrow
// reuses the narrowed token until MinValidity; narrowing_refused is a *Problem.
func TestNarrowedToken(t *testing.T) {
	var calls atomic.Int64
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		q := r.URL.Query()
		if q.Get("repositories") == "delta" {
			writeProblem(w, 422, "narrowing_refused")
			return
		}
		if q.Get("repositories") != "alpha,beta" || q.Get("permissions") != "contents:read,issues:write" {
			writeProblem(w, 400, "invalid_request")
			return
		}
		fmt.Fprint(w, `{"connection_id":"conn_g","credential_type":"github_app","access_token":"ghs_x","token_type":"Bearer","expires_at":"2030-01-01T00:00:00Z","scopes":["contents:read","issues:write","repository:alpha","repository:beta"]}`)
	})
	n := Narrowing{Repositories: []string{"alpha", "beta"}, Permissions: map[string]string{"issues": "write", "contents": "read"}}
	tok, err := c.NarrowedToken(context.Background(), "conn_g", n)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Minted() || tok.AccessToken != "ghs_x" || len(tok.Scopes) != 4 {
		t.Fatalf("token = %+v", tok)
	}
	ts := c.TokenSource("conn_g", Narrow(n))
	for range 3 {
		if ot, err := ts.Token(); err != nil || ot.AccessToken != "ghs_x" {
			t.Fatalf("token source: %v", err)
		}
	}
	if calls.Load() != 2 {
		t.Fatalf("the narrowed token was not reused: %d calls", calls.Load())
	}
	_, err = c.NarrowedToken(context.Background(), "conn_g", Narrowing{Repositories: []string{"delta"}})
	if p, ok := err.(*Problem); !ok || p.Code != "narrowing_refused" || p.Status != 422 {
		t.Fatalf("err = %v", err)
	}
}

package authpipe

import (
	"context"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// Narrowing limits a GitHub App connection's token to some repositories and permissions
// (least privilege per read): GET /v1/connections/{id}/token?repositories=..&permissions=..
// The proxy mints such a token for each request (GitHub's hour), never caches it, and
// audits it as token.narrowed; a TokenSource with Narrow reuses it until MinValidity.
type Narrowing struct {
	Repositories []string          // repository names without the owner ("alpha")
	Permissions  map[string]string // permission name → "read", "write" or "admin"
}

func (n Narrowing) query(q url.Values) {
	if len(n.Repositories) > 0 {
		q.Set("repositories", strings.Join(n.Repositories, ","))
	}
	if len(n.Permissions) > 0 {
		pairs := make([]string, 0, len(n.Permissions))
		for _, name := range slices.Sorted(maps.Keys(n.Permissions)) {
			pairs = append(pairs, name+":"+n.Permissions[name])
		}
		q.Set("permissions", strings.Join(pairs, ","))
	}
}

// NarrowedToken reads a token of a github_app connection limited to n. Its Scopes are what
// GitHub granted ("contents:read", "repository:alpha"). Errors as Token's, and a *Problem
// with code narrowing_refused (422) when the installation does not grant what n asks, or
// invalid_request (400) for malformed narrowing or another mode's connection.
func (c *Client) NarrowedToken(ctx context.Context, connectionID string, n Narrowing) (*Token, error) {
	q := url.Values{}
	n.query(q)
	var t Token
	if err := c.do(ctx, "GET", "/v1/connections/"+url.PathEscape(connectionID)+"/token", q, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Narrow makes a TokenSource read narrowed tokens (NarrowedToken): each one is reused
// until MinValidity before its expiry, so an application pays one mint at GitHub per hour
// per source rather than one per call.
func Narrow(n Narrowing) TokenSourceOption {
	return func(s *tokenSource) { s.narrowing = &n }
}

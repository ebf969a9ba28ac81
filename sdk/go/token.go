package authpipe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Token is the answer of GET /v1/connections/{id}/token: the connection's current
// credential. It holds a secret: never log it.
type Token struct {
	ConnectionID   string         `json:"connection_id"`
	CredentialType string         `json:"credential_type"` // the auth mode: oauth2, api_key, basic, oauth2_client_credentials, jwt_bearer, github_app
	AccessToken    string         `json:"access_token,omitempty"`
	APIKey         string         `json:"api_key,omitempty"`
	Username       string         `json:"username,omitempty"` // basic: the HTTP Basic (RFC 7617) pair
	Password       string         `json:"password,omitempty"` // basic
	TokenType      string         `json:"token_type,omitempty"`
	ExpiresAt      time.Time      `json:"expires_at,omitzero"`
	Scopes         []string       `json:"scopes,omitempty"`
	Metadata       map[string]any `json:"metadata,omitempty"`
}

// Minted reports whether the token was minted by the proxy from a machine grant
// (oauth2_client_credentials, jwt_bearer, github_app): an access token like an OAuth one,
// with no end user's authorization behind it.
func (t Token) Minted() bool {
	switch t.CredentialType {
	case "oauth2_client_credentials", "jwt_bearer", "github_app":
		return true
	}
	return false
}

// String never shows the credential: %v, %+v and %s print the metadata only.
func (t Token) String() string {
	return fmt.Sprintf("Token{connection_id:%s credential_type:%s expires_at:%s secret:[REDACTED]}",
		t.ConnectionID, t.CredentialType, t.ExpiresAt.Format("2006-01-02T15:04:05Z07:00"))
}

// GoString is String, for %#v.
func (t Token) GoString() string { return t.String() }

// LogValue keeps the credential out of slog records.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("connection_id", t.ConnectionID), slog.String("credential_type", t.CredentialType),
		slog.Time("expires_at", t.ExpiresAt))
}

// Token reads a connection's credential, refreshed first by the proxy when it would expire
// within minValidity (0: the proxy's own lead window). Errors: IsNeedsReauth,
// IsDisconnected, and *Problem with the code otherwise.
func (c *Client) Token(ctx context.Context, connectionID string, minValidity time.Duration) (*Token, error) {
	q := url.Values{}
	if s := int64(minValidity / time.Second); s > 0 {
		q.Set("min_validity", strconv.FormatInt(s, 10))
	}
	var t Token
	if err := c.do(ctx, "GET", "/v1/connections/"+url.PathEscape(connectionID)+"/token", q, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ErrBasicCredential is a TokenSource's error for a basic connection: a username and
// password are not a bearer token.
var ErrBasicCredential = errors.New("authpipe: a basic connection has a username and password, not a token: use Client.Token or Client.Transport")

// TokenSourceOption configures a TokenSource.
type TokenSourceOption func(*tokenSource)

// MinValidity: a cached token is reused until it would expire within d, and the proxy is
// asked for one valid at least that long (default 1 minute).
func MinValidity(d time.Duration) TokenSourceOption {
	return func(s *tokenSource) { s.minValidity = d }
}

// NoExpiryReuse bounds how long a credential without an expiry (an API key) is reused
// before it is read again (default 5 minutes), so a rotated key is picked up.
func NoExpiryReuse(d time.Duration) TokenSourceOption {
	return func(s *tokenSource) { s.noExpiryTTL = d }
}

// TokenSource returns an oauth2.TokenSource of the connection's credential, for
// oauth2.NewClient or any code that takes one. It is safe for concurrent use and shares
// one request among concurrent callers; it reuses a token until MinValidity before its
// expiry. For an API-key connection AccessToken holds the API key and TokenType is empty.
// A basic connection has no token to put in one (its Token fails with ErrBasicCredential):
// read its Username and Password with Client.Token, or call through Client.Transport.
func (c *Client) TokenSource(connectionID string, opts ...TokenSourceOption) oauth2.TokenSource {
	s := &tokenSource{c: c, id: connectionID, minValidity: time.Minute, noExpiryTTL: 5 * time.Minute}
	for _, o := range opts {
		o(s)
	}
	return s
}

type tokenSource struct {
	c           *Client
	id          string
	minValidity time.Duration
	noExpiryTTL time.Duration
	narrowing   *Narrowing // Narrow: narrowed GitHub App tokens (narrowed.go)

	mu       sync.Mutex
	cur      *oauth2.Token
	until    time.Time // reuse cur before this instant
	inflight *call
}

type call struct {
	done chan struct{}
	tok  *oauth2.Token
	err  error
}

func (s *tokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	if s.cur != nil && s.c.now().Before(s.until) {
		t := s.cur
		s.mu.Unlock()
		return t, nil
	}
	if cl := s.inflight; cl != nil {
		s.mu.Unlock()
		<-cl.done
		return cl.tok, cl.err
	}
	cl := &call{done: make(chan struct{})}
	s.inflight = cl
	s.mu.Unlock()

	cl.tok, cl.err = s.fetch()

	s.mu.Lock()
	s.inflight = nil
	if cl.err == nil {
		s.cur = cl.tok
		if cl.tok.Expiry.IsZero() {
			s.until = s.c.now().Add(s.noExpiryTTL)
		} else {
			s.until = cl.tok.Expiry.Add(-s.minValidity)
		}
	}
	s.mu.Unlock()
	close(cl.done)
	return cl.tok, cl.err
}

func (s *tokenSource) fetch() (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.c.hc.Timeout)
	defer cancel()
	var t *Token
	var err error
	if s.narrowing != nil {
		t, err = s.c.NarrowedToken(ctx, s.id, *s.narrowing)
	} else {
		t, err = s.c.Token(ctx, s.id, s.minValidity)
	}
	if err != nil {
		return nil, err
	}
	if t.CredentialType == "basic" {
		return nil, ErrBasicCredential
	}
	ot := &oauth2.Token{AccessToken: t.AccessToken, TokenType: t.TokenType, Expiry: t.ExpiresAt}
	if t.AccessToken == "" && t.APIKey != "" {
		ot.AccessToken = t.APIKey
	}
	extra := map[string]any{"connection_id": t.ConnectionID, "credential_type": t.CredentialType, "scopes": t.Scopes}
	if len(t.Metadata) > 0 {
		extra["metadata"] = t.Metadata
	}
	return ot.WithExtra(extra), nil
}

package authpipe

import (
	"context"
	"iter"
	"net/url"
	"strconv"
	"time"
)

// Connection is a connection's metadata; it never holds a credential.
type Connection struct {
	ID               string         `json:"id"`
	Provider         string         `json:"provider"`
	EndUserID        string         `json:"end_user_id"`
	AuthMode         string         `json:"auth_mode"`
	Status           string         `json:"status"` // active, needs_reauth, disconnected, error
	Reason           string         `json:"reason,omitempty"`
	Scopes           []string       `json:"scopes,omitempty"`
	CredentialPrefix string         `json:"credential_prefix,omitempty"`
	ConnectionConfig map[string]any `json:"connection_config,omitempty"`
	Metadata         map[string]any `json:"metadata,omitempty"`
	ExpiresAt        time.Time      `json:"expires_at,omitzero"`
	LastRefreshedAt  time.Time      `json:"last_refreshed_at,omitzero"`
	CreatedAt        time.Time      `json:"created_at,omitzero"`
	UpdatedAt        time.Time      `json:"updated_at,omitzero"`
}

// Grant is an existing OAuth grant to import (CreateConnection with OAuth2).
type Grant struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	Scopes       []string  `json:"scopes,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
}

// BasicAuth is a basic provider's username and password (RFC 7617: no colon in the
// username).
type BasicAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// NewConnection creates a connection without a browser: an API key, a username and
// password, or an imported OAuth grant. Exactly one credential field is set.
type NewConnection struct {
	Provider         string            `json:"provider"`
	EndUserID        string            `json:"end_user_id"`
	APIKey           string            `json:"api_key,omitempty"`
	Basic            *BasicAuth        `json:"basic,omitempty"`
	OAuth2           *Grant            `json:"oauth2,omitempty"`
	ConnectionConfig map[string]string `json:"connection_config,omitempty"`
	Metadata         map[string]any    `json:"metadata,omitempty"`
}

// CreateConnection stores a credential (scope connections:write).
func (c *Client) CreateConnection(ctx context.Context, n NewConnection) (*Connection, error) {
	var conn Connection
	if err := c.do(ctx, "POST", "/v1/connections", nil, n, &conn); err != nil {
		return nil, err
	}
	return &conn, nil
}

// Connection reads one connection's metadata.
func (c *Client) Connection(ctx context.Context, id string) (*Connection, error) {
	var conn Connection
	if err := c.do(ctx, "GET", "/v1/connections/"+url.PathEscape(id), nil, nil, &conn); err != nil {
		return nil, err
	}
	return &conn, nil
}

// Refresh refreshes a connection's token now (scope connections:write).
func (c *Client) Refresh(ctx context.Context, id string) (*Connection, error) {
	var conn Connection
	if err := c.do(ctx, "POST", "/v1/connections/"+url.PathEscape(id)+"/refresh", nil, nil, &conn); err != nil {
		return nil, err
	}
	return &conn, nil
}

// Disconnect revokes the credential at the provider where it can and deletes it (scope
// connections:write).
func (c *Client) Disconnect(ctx context.Context, id string) (*Connection, error) {
	var conn Connection
	if err := c.do(ctx, "DELETE", "/v1/connections/"+url.PathEscape(id), nil, nil, &conn); err != nil {
		return nil, err
	}
	return &conn, nil
}

// ListOptions filter Connections; zero fields do not filter.
type ListOptions struct {
	EndUserID string
	Provider  string
	Status    string
	PageSize  int // per request; the proxy's default when 0
}

// Connections iterates over the matching connections, fetching pages as it goes. The
// iteration stops at the first error, which it yields.
func (c *Client) Connections(ctx context.Context, o ListOptions) iter.Seq2[Connection, error] {
	return func(yield func(Connection, error) bool) {
		q := url.Values{}
		for k, v := range map[string]string{"end_user_id": o.EndUserID, "provider": o.Provider, "status": o.Status} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if o.PageSize > 0 {
			q.Set("limit", strconv.Itoa(o.PageSize))
		}
		for {
			var page struct {
				Connections []Connection `json:"connections"`
				NextCursor  string       `json:"next_cursor"`
			}
			if err := c.do(ctx, "GET", "/v1/connections", q, nil, &page); err != nil {
				yield(Connection{}, err)
				return
			}
			for _, conn := range page.Connections {
				if !yield(conn, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			q.Set("cursor", page.NextCursor)
		}
	}
}

// ConnectSessionRequest starts an end user's connect flow (scope connections:write).
// CallbackURL and ReturnURL default to the provider's first allowlisted ones.
type ConnectSessionRequest struct {
	Provider         string            `json:"provider"`
	EndUserID        string            `json:"end_user_id"`
	CallbackURL      string            `json:"callback_url,omitempty"`
	ReturnURL        string            `json:"return_url,omitempty"`
	Scopes           []string          `json:"scopes,omitempty"`
	ConnectionConfig map[string]string `json:"connection_config,omitempty"`
}

// ConnectSession is a single-use link, valid for at most 10 minutes, to send the end
// user's browser to.
type ConnectSession struct {
	ID         string    `json:"id"`
	ConnectURL string    `json:"connect_url"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// CreateConnectSession creates a connect session.
func (c *Client) CreateConnectSession(ctx context.Context, r ConnectSessionRequest) (*ConnectSession, error) {
	var s ConnectSession
	if err := c.do(ctx, "POST", "/v1/connect/sessions", nil, r, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Reconnect creates a connect session that restores the connection id (after
// needs_reauth).
func (c *Client) Reconnect(ctx context.Context, id string) (*ConnectSession, error) {
	var s ConnectSession
	if err := c.do(ctx, "POST", "/v1/connections/"+url.PathEscape(id)+"/reconnect", nil, struct{}{}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

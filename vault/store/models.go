package store

import (
	"crypto/sha256"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/authpipe/authpipe-proxy/vault"
)

// Strings is a list of strings kept as a JSON array in one column.
type Strings []string

// Value implements driver.Valuer.
func (s Strings) Value() (driver.Value, error) {
	if s == nil {
		return "[]", nil
	}
	b, err := json.Marshal([]string(s))
	return string(b), err
}

// Scan implements sql.Scanner.
func (s *Strings) Scan(v any) error {
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	case nil:
		*s = nil
		return nil
	default:
		return fmt.Errorf("store: cannot scan %T into Strings", v)
	}
	return json.Unmarshal(b, (*[]string)(s))
}

// BoundOrigins is a stored origin binding as vault.Origins: nil (not bound) for NULL.
func BoundOrigins(s *Strings) vault.Origins {
	switch {
	case s == nil:
		return nil
	case *s == nil:
		return vault.Origins{}
	}
	return vault.Origins(*s)
}

// StoredOrigins is the column value of a binding: NULL for nil (not bound).
func StoredOrigins(o vault.Origins) *Strings {
	if o == nil {
		return nil
	}
	s := Strings(o)
	return &s
}

// JSONObject is m as the JSON object text of a ConnectionConfig or Metadata column
// ("{}" for none); keys are sorted, so equal maps give equal text.
func JSONObject(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m) // a map of strings always marshals
	return string(b)
}

// ParseJSONObject reads a ConnectionConfig or Metadata column (nil for "", "{}" or a
// malformed value).
func ParseJSONObject(s string) map[string]string {
	if s == "" || s == "{}" {
		return nil
	}
	var m map[string]string
	if json.Unmarshal([]byte(s), &m) != nil || len(m) == 0 {
		return nil
	}
	return m
}

// Workspace is a tenant: every other row belongs to one.
type Workspace struct {
	ID        string `gorm:"primaryKey"`
	Name      string
	CreatedAt time.Time
	// AuditRetentionSeconds overrides AUTHPIPE_AUDIT_RETENTION for this workspace (nil: the
	// deployment's setting).
	AuditRetentionSeconds *int64
	// FrozenAt is when the workspace was frozen (incident response): while it is set, its
	// credentials are not served (423 workspace_frozen). nil: not frozen.
	FrozenAt *time.Time
}

// TableName implements gorm's tabler.
func (Workspace) TableName() string { return "workspaces" }

// APIKey is an application's key. Only a keyed hash of the key is stored.
type APIKey struct {
	ID          string `gorm:"primaryKey"`
	WorkspaceID string
	Name        string
	Prefix      string
	Hash        []byte
	HashKeyID   string
	Scopes      Strings
	CreatedAt   time.Time
	RevokedAt   *time.Time
}

// TableName implements gorm's tabler.
func (APIKey) TableName() string { return "api_keys" }

// Provider is an integration configured in a workspace. Config is the JSON document of
// its non-secret settings; the client secret lives in ProviderSecret.
type Provider struct {
	ID          string `gorm:"primaryKey"`
	WorkspaceID string
	Key         string
	AuthMode    string
	Config      string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TableName implements gorm's tabler.
func (Provider) TableName() string { return "providers" }

// ProviderSecret is a provider's sealed OAuth client secret.
type ProviderSecret struct {
	ProviderID  string `gorm:"primaryKey"`
	WorkspaceID string
	Sealed      []byte
	// Prefix is what a view shows of the secret: its masked first characters, or for a
	// tls_client_auth certificate bundle "x509:" + the certificate's public description
	// (providers/clientcert.go). NextPrefix likewise.
	Prefix string
	// Origins the secret is bound to (part of its associated data); nil: not bound yet.
	Origins   *Strings
	UpdatedAt time.Time
	// NextSealed is the OAuth app's next client secret during a secret rotation (nil when
	// none), sealed with the current one's binding (NextOrigins, the same origins): the
	// token endpoint gets it when it answers invalid_client to the current one. NextPrefix
	// is its masked prefix.
	NextSealed  []byte
	NextPrefix  string
	NextOrigins *Strings
}

// TableName implements gorm's tabler.
func (ProviderSecret) TableName() string { return "provider_secrets" }

// Connection statuses (API.md).
const (
	StatusActive        = "active"
	StatusNeedsReauth   = "needs_reauth"
	StatusDisconnected  = "disconnected"
	StatusError         = "error"
	StatusRevokePending = "revoke_pending"
)

// PublicStatus is a connection status as the API, webhooks and the control plane show
// it: revoke_pending (disconnected, revocation at the provider still to do) is internal
// and shows as disconnected.
func PublicStatus(status string) string {
	if status == StatusRevokePending {
		return StatusDisconnected
	}
	return status
}

// ReasonProviderOriginChanged is the StatusReason of a connection put into needs_reauth
// because its provider's endpoint origins changed.
const ReasonProviderOriginChanged = "provider_origin_changed"

// Connection is one end user's link to one provider: metadata only.
type Connection struct {
	ID          string `gorm:"primaryKey"`
	WorkspaceID string
	Provider    string
	EndUserID   string
	AuthMode    string
	Status      string
	// StatusReason is why the connection is not active, as a stable code ('' when none
	// is recorded): ReasonProviderOriginChanged.
	StatusReason     string
	Scopes           Strings
	CredentialPrefix string
	// WebhookSecretPrefix is the masked prefix of the connection's provider webhook signing
	// secret ('' when it has none; inbound_webhooks.go).
	WebhookSecretPrefix string
	ExpiresAt           *time.Time
	LastRefreshedAt     *time.Time
	NextRefreshAt       *time.Time
	DisconnectedAt      *time.Time
	// ExternalID is an imported connection's id in the system it came from, unique in
	// the workspace (nil for connections made here): an import run again skips it.
	ExternalID *string
	// RefreshTokenExpiresAt is when the refresh token stops working (the provider's
	// refresh_token_expires_in or the like, or an import's value); nil when unknown.
	// ExpiringNotifiedFor is the RefreshTokenExpiresAt that the connection.expiring
	// webhook was sent for.
	RefreshTokenExpiresAt *time.Time
	ExpiringNotifiedFor   *time.Time
	// ConnectionConfig are the values the connection filled into its provider's URL
	// placeholders, Metadata the token-response fields it keeps (instance_url): each a
	// JSON object of strings (JSONObject), "{}" or "" when empty. Kept as text so that the
	// token endpoint copies them into its response as they are.
	ConnectionConfig string
	Metadata         string
	Version          int64
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// TableName implements gorm's tabler.
func (Connection) TableName() string { return "connections" }

// Credential holds a connection's sealed secrets, each sealed on its own and bound to the
// connection, the field and the workspace.
type Credential struct {
	ConnectionID string `gorm:"primaryKey"`
	WorkspaceID  string
	AccessToken  []byte
	RefreshToken []byte
	APIKey       []byte `gorm:"column:api_key"`
	TokenType    string
	// AccessOrigins are the origins the access token or API key is bound to, RefreshOrigins
	// those of the refresh token (part of each one's associated data); nil: not bound yet.
	AccessOrigins  *Strings
	RefreshOrigins *Strings
	// GrantSecret is a minted-mode connection's sealed grant secret (its own OAuth client,
	// or a service-account key: vault.GrantSecretBinding), bound to GrantOrigins (the token
	// endpoint); nil when the connection mints with its provider's client.
	GrantSecret  []byte
	GrantOrigins *Strings
	UpdatedAt    time.Time
}

// TableName implements gorm's tabler.
func (Credential) TableName() string { return "credentials" }

// ProxyKey is one of the proxy's own keys (e.g. the API-key hashing key), sealed under
// the client-secret keyring.
type ProxyKey struct {
	ID        string `gorm:"primaryKey"` // the key id (kid) carried by what the key makes
	Purpose   string
	State     string // ProxyKeyActive, ProxyKeyVerifyOnly or ProxyKeyRetired
	Sealed    []byte
	CreatedAt time.Time
	// RotatedAt is when the key stopped signing; RetireAfter, when set, when it retires
	// by itself (nil: when nothing needs it any more, or never).
	RotatedAt   *time.Time
	RetireAfter *time.Time
}

// States of a proxy key: active signs and verifies, verify-only only verifies, retired
// does neither (and is never loaded).
const (
	ProxyKeyActive     = "active"
	ProxyKeyVerifyOnly = "verify-only"
	ProxyKeyRetired    = "retired"
)

// TableName implements gorm's tabler.
func (ProxyKey) TableName() string { return "proxy_keys" }

type dekRow struct {
	ID          string `gorm:"primaryKey"`
	WorkspaceID string
	Purpose     string
	Generation  int
	KEKID       string `gorm:"column:kek_id"`
	KEKVersion  string `gorm:"column:kek_version"`
	Wrapped     []byte
	CreatedAt   time.Time
	RewrappedAt *time.Time
}

func (dekRow) TableName() string { return "deks" }

type auditHead struct {
	WorkspaceID string `gorm:"primaryKey"`
	Seq         int64
	Hash        string
	EventID     string
}

func (auditHead) TableName() string { return "audit_heads" }

type auditRow struct {
	ID           string `gorm:"primaryKey"`
	WorkspaceID  string
	Seq          int64
	At           time.Time
	Type         string
	Actor        string
	ConnectionID string
	Outcome      string
	ErrorCode    string
	Data         string
	PrevHash     string
	Hash         string
}

func (auditRow) TableName() string { return "audit_events" }

// mintedModes are the auth modes whose access tokens the proxy mints from a grant
// (oauthflow.AuthMode.Minted; store cannot import oauthflow).
var mintedModes = []string{"oauth2_client_credentials", "jwt_bearer", "github_app"}

// BindingContext is what a minted connection's credentials (its access token and grant
// secret) are sealed for besides their origins: the digest of its connection_config,
// which says whom a mint acts for (a GitHub App installation, a jwt_bearer subject, a
// tenant path segment) without moving any origin. A database writer who edits the
// configuration makes them unopenable, so the next mint is refused before anything is sent
// (refresher accessBindingAuthentic). "" for every other connection: their associated data
// is unchanged (their configuration only fills host labels and paths under origins they
// are bound to).
func (c Connection) BindingContext() string {
	if !slices.Contains(mintedModes, c.AuthMode) {
		return ""
	}
	sum := sha256.Sum256([]byte(JSONObject(ParseJSONObject(c.ConnectionConfig))))
	return "connection_config:" + hex.EncodeToString(sum[:])
}

// AccessTokenBinding is vault.AccessTokenBinding of c's access token, with its BindingContext.
func AccessTokenBinding(c Connection, origins vault.Origins) vault.Binding {
	b := vault.AccessTokenBinding(c.WorkspaceID, c.ID, origins)
	b.Context = c.BindingContext()
	return b
}

// GrantSecretBinding is vault.GrantSecretBinding of c's grant secret, with its BindingContext.
func GrantSecretBinding(c Connection, origins vault.Origins) vault.Binding {
	b := vault.GrantSecretBinding(c.WorkspaceID, c.ID, origins)
	b.Context = c.BindingContext()
	return b
}

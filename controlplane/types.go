package controlplane

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"
)

// This file declares every type that crosses the boundary to the control plane, in both
// directions, and nothing else. TestBoundaryTypes walks them by reflection: a field that
// is (or contains) a vault.Secret, that is named like a secret, or that is a free-form
// string not documented here as bounded fails the build. Each string field below is an
// identifier, an enum, a version or a URL checked to carry no query; Validate enforces
// that at run time too, so an event that would carry anything else is dropped, not sent.

// EventType names a metadata event.
type EventType string

// Event types pushed to the control plane.
const (
	EventConnectionCreated       EventType = "connection.created"
	EventConnectionDisconnected  EventType = "connection.disconnected"
	EventConnectionErased        EventType = "connection.erased"
	EventConnectionRefreshed     EventType = "connection.refreshed"
	EventConnectionRefreshFailed EventType = "connection.refresh_failed"
	EventConnectionStatusChanged EventType = "connection.status_changed"
	EventHeartbeat               EventType = "heartbeat"
	EventCounts                  EventType = "counts"
	// EventAuditCheckpoint carries a signed head of a workspace's audit chain, so that
	// truncation evidence lives outside the database (see docs/lifecycle.md).
	EventAuditCheckpoint EventType = "audit.checkpoint"
	// EventConfigRefused says that a pulled configuration document was refused (the last
	// good one stays in force): ErrorCode says why, ConfigVersion is the document's version
	// (0 when it could not be read).
	EventConfigRefused EventType = "config.refused"
	// EventSecurityAnomaly is a finding of the anomaly detection (docs/incident-response.md):
	// Anomaly says which, with counts; WorkspaceID, and Provider (provider kinds) or
	// ConnectionID (refresh_storm). Metadata only: never a credential, a client address or
	// certificate, or an end user's data.
	EventSecurityAnomaly EventType = "security.anomaly"
)

// EventTypes lists every EventType, for validation and tests.
var EventTypes = []EventType{EventConnectionCreated, EventConnectionDisconnected, EventConnectionErased,
	EventConnectionRefreshed, EventConnectionRefreshFailed, EventConnectionStatusChanged, EventHeartbeat, EventCounts,
	EventAuditCheckpoint, EventConfigRefused, EventSecurityAnomaly}

// AnomalyKind is the kind of a security.anomaly (internal/audit.AnomalyKinds).
type AnomalyKind string

// Anomaly kinds.
const (
	AnomalyKeyConnections      AnomalyKind = "key_connections_burst"
	AnomalyRefusedReads        AnomalyKind = "refused_read_burst"
	AnomalyNewClientAddress    AnomalyKind = "new_client_address"
	AnomalyNewClientCert       AnomalyKind = "new_client_certificate"
	AnomalyProviderFailures    AnomalyKind = "provider_refresh_failures"
	AnomalyProviderNeedsReauth AnomalyKind = "provider_needs_reauth_burst"
	AnomalyRefreshStorm        AnomalyKind = "refresh_storm"
)

// AnomalyKinds lists every AnomalyKind.
var AnomalyKinds = []AnomalyKind{AnomalyKeyConnections, AnomalyRefusedReads, AnomalyNewClientAddress, AnomalyNewClientCert,
	AnomalyProviderFailures, AnomalyProviderNeedsReauth, AnomalyRefreshStorm}

// Status is a connection status as the API reports it.
type Status string

// Connection statuses (API.md).
const (
	StatusActive       Status = "active"
	StatusNeedsReauth  Status = "needs_reauth"
	StatusDisconnected Status = "disconnected"
	StatusError        Status = "error"
)

var statuses = []Status{StatusActive, StatusNeedsReauth, StatusDisconnected, StatusError}

// ErrorCode is a failure class from a fixed set. It is never a provider's error text:
// callers map what they saw (an oauth2.RetrieveError's ErrorCode, an HTTP status, a
// network error) onto one of these.
type ErrorCode string

// Error codes.
const (
	ErrorInvalidGrant      ErrorCode = "invalid_grant"        // the provider refused the refresh token
	ErrorInvalidClient     ErrorCode = "invalid_client"       // the provider refused the client credentials
	ErrorRateLimited       ErrorCode = "rate_limited"         // 429 from the provider
	ErrorProviderError     ErrorCode = "provider_error"       // 5xx or a malformed answer from the provider
	ErrorNetwork           ErrorCode = "network_error"        // no answer (timeout, DNS, TLS, refused address)
	ErrorKMSUnavailable    ErrorCode = "kms_unavailable"      // the KEK could not be reached
	ErrorRevocationFailed  ErrorCode = "revocation_failed"    // the provider did not confirm a revocation
	ErrorUnknown           ErrorCode = "unknown"              // anything else
	ErrorBadSignature      ErrorCode = "bad_signature"        // (audit only) a pulled config failed verification
	ErrorInvalidConfig     ErrorCode = "invalid_config"       // (audit only) a verified config failed validation
	ErrorStaleConfigReplay ErrorCode = "stale_config_version" // (config) an older version than the one applied
	// Refusals of a verified document that is not meant for this deployment now, or that
	// would redirect credentials (docs/control-plane.md, "Refusals").
	ErrorForeignConfig         ErrorCode = "foreign_config"              // audience is not this deployment's id
	ErrorExpiredConfig         ErrorCode = "expired_config"              // expires_at has passed (or is missing)
	ErrorStaleConfig           ErrorCode = "stale_config"                // issued_at older than MaxConfigAge (or missing)
	ErrorFutureConfig          ErrorCode = "future_config"               // issued_at later than now + MaxConfigClockSkew
	ErrorConfigOriginChange    ErrorCode = "config_origin_change"        // would change an existing provider's origins
	ErrorConfigSecretChange    ErrorCode = "config_client_secret_change" // would set or change a client secret
	ErrorProviderOriginChanged ErrorCode = "provider_origin_changed"     // (connection.status_changed) an admin moved the provider's endpoint origins
)

var errorCodes = []ErrorCode{ErrorInvalidGrant, ErrorInvalidClient, ErrorRateLimited, ErrorProviderError, ErrorNetwork,
	ErrorKMSUnavailable, ErrorRevocationFailed, ErrorUnknown, ErrorBadSignature, ErrorInvalidConfig, ErrorStaleConfigReplay,
	ErrorForeignConfig, ErrorExpiredConfig, ErrorStaleConfig, ErrorFutureConfig, ErrorConfigOriginChange, ErrorConfigSecretChange,
	ErrorProviderOriginChanged}

// Health is the data plane's own summary in a heartbeat.
type Health string

// Health values.
const (
	HealthOK       Health = "ok"       // database reachable, start-up work done
	HealthDegraded Health = "degraded" // something the data plane needs is unreachable
)

// Event is one metadata record pushed to POST /v1/dataplane/events. Which fields are set
// depends on Type (docs/control-plane.md).
type Event struct {
	// ID is unique per event ("cpe_" + 26 base32 characters): the control plane
	// deduplicates on it, since a batch may be delivered more than once.
	ID   string    `json:"id"`
	Type EventType `json:"type"`
	At   time.Time `json:"at"`
	// WorkspaceID and ConnectionID are opaque ids (ws_…, conn_…); ws_default too.
	WorkspaceID  string `json:"workspace_id,omitempty"`
	ConnectionID string `json:"connection_id,omitempty"`
	// Provider is the workspace's provider key: ^[a-z0-9][a-z0-9_-]{0,62}$.
	Provider  string    `json:"provider,omitempty"`
	Status    Status    `json:"status,omitempty"`
	ErrorCode ErrorCode `json:"error_code,omitempty"`
	// Counts (type counts): connections per workspace, provider and status.
	Counts []Count `json:"counts,omitempty"`
	// Version (type heartbeat): the data plane's build version, ^[0-9A-Za-z.+_-]{1,64}$.
	Version string `json:"version,omitempty"`
	Health  Health `json:"health,omitempty"`
	// DeploymentID (types heartbeat and config.refused) is this deployment's id,
	// ^dep_[a-z2-7]{26}$: the audience the control plane signs documents for.
	DeploymentID string `json:"deployment_id,omitempty"`
	// ConfigVersion (type config.refused) is the refused document's version.
	ConfigVersion int64 `json:"config_version,omitempty"`
	// Checkpoint (type audit.checkpoint): the signed chain head. Hashes, ids, a public key
	// and a signature: all public by design, none a credential.
	Checkpoint *AuditCheckpoint `json:"checkpoint,omitempty"`
	// Anomaly (type security.anomaly): the finding.
	Anomaly *Anomaly `json:"anomaly,omitempty"`
}

// Anomaly is a finding of the anomaly detection: its kind, the API key it is about (key
// kinds), and counts over the detection window.
type Anomaly struct {
	Kind AnomalyKind `json:"kind"`
	// APIKeyID is the API key's id (apk_…, idRE), never the key.
	APIKeyID string `json:"api_key_id,omitempty"`
	Count    int64  `json:"count"`
	Baseline int64  `json:"baseline"`
	// WindowSeconds is the detection window (0 for the client kinds).
	WindowSeconds int64 `json:"window_seconds,omitempty"`
}

// AuditCheckpoint is an audit chain head signed by the deployment's Ed25519 checkpoint
// key (internal/audit.Checkpoint, field for field).
type AuditCheckpoint struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`       // hex SHA-256, chainHashRE
	EventID   string    `json:"event_id"`   // evt_…, idRE
	At        time.Time `json:"at"`         // when it was signed
	KeyID     string    `json:"kid"`        // checkpointKIDRE
	PublicKey string    `json:"public_key"` // base64url Ed25519 public key, b64KeyRE
	Signature string    `json:"sig"`        // base64url Ed25519 signature, b64SigRE
}

// Count is the number of connections of one provider in one status in one workspace.
type Count struct {
	WorkspaceID string `json:"workspace_id"`
	Provider    string `json:"provider"`
	Status      Status `json:"status"`
	N           int    `json:"n"`
}

// ConfigDocument is what the control plane signs and the data plane applies: the
// provider configurations of each workspace. Client secrets are not part of it: they are
// set in the data plane (PUT /v1/providers/{key}) and kept when a pulled configuration
// replaces a provider.
type ConfigDocument struct {
	// Version increases with every document the control plane issues. A document whose
	// version is lower than the one applied is refused (a replayed old signature); an
	// equal one is not re-applied.
	Version int64 `json:"version"`
	// Audience is the id of the one deployment the document is for (GET /v1/deployment,
	// the heartbeat's deployment_id): any other deployment refuses it.
	Audience string `json:"audience"`
	// IssuedAt and ExpiresAt bound when the document may be applied: not after ExpiresAt,
	// not once IssuedAt is older than MaxConfigAge, not before IssuedAt minus
	// MaxConfigClockSkew. The control plane signs its document again (same version when
	// the content is unchanged) before either limit.
	IssuedAt   time.Time         `json:"issued_at"`
	ExpiresAt  time.Time         `json:"expires_at"`
	Workspaces []WorkspaceConfig `json:"workspaces"`
}

// WorkspaceConfig is one workspace's part of a ConfigDocument. The workspace must exist
// in the data plane. Providers listed are created or replaced; providers not listed are
// left alone.
type WorkspaceConfig struct {
	WorkspaceID string              `json:"workspace_id"`
	Providers   []ProviderConfigDoc `json:"providers"`
}

// ProviderConfigDoc is a provider configuration as the providers API takes it
// (PUT /v1/providers/{key}), minus the client secret, which has no field here at all.
// Endpoint fields override the template's; they must be absolute URLs without a query.
type ProviderConfigDoc struct {
	// Key is the provider key in the workspace: ^[a-z0-9][a-z0-9_-]{0,62}$.
	Key string `json:"key"`
	// Template names a catalog entry (same pattern as Key).
	Template string `json:"template,omitempty"`
	// AuthMode is one of the proxy's auth modes (API.md "Auth modes"; "" = the template's,
	// else oauth2). The providers service checks what each mode requires.
	AuthMode string `json:"auth_mode,omitempty"`
	// ClientID is the OAuth client id: public by RFC 6749 §2.2, printable, ≤ 256 bytes.
	ClientID     string   `json:"client_id,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	CallbackURLs []string `json:"callback_urls,omitempty"`
	ReturnURLs   []string `json:"return_urls,omitempty"`

	AuthorizationURL string `json:"authorization_url,omitempty"`
	TokenURL         string `json:"token_url,omitempty"`
	RefreshURL       string `json:"refresh_url,omitempty"`
	RevocationURL    string `json:"revocation_url,omitempty"`
	Issuer           string `json:"issuer,omitempty"`
	APIBaseURL       string `json:"api_base_url,omitempty"`
	HealthCheckURL   string `json:"health_check_url,omitempty"`
}

// SignedConfig is the body of GET /v1/dataplane/config: the exact bytes of a
// ConfigDocument (JSON) and an Ed25519 signature over them (RFC 8032), made with the key
// whose id is KeyID. The data plane verifies Signature over Payload with its pinned key
// before it parses Payload.
type SignedConfig struct {
	Payload   []byte `json:"payload"`   // base64 in JSON
	Signature []byte `json:"signature"` // base64 in JSON, 64 bytes
	// KeyID is KeyIDOf(public key): the first 16 hex digits of its SHA-256.
	KeyID string `json:"key_id"`
}

// eventBatch is the body of POST /v1/dataplane/events.
type eventBatch struct {
	Events []Event `json:"events"`
}

var (
	providerKeyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	idRE          = regexp.MustCompile(`^[a-z]{2,8}_[a-z0-9]{1,64}$`)
	versionRE     = regexp.MustCompile(`^[0-9A-Za-z.+_-]{1,64}$`)
	deploymentRE  = regexp.MustCompile(`^dep_[a-z2-7]{26}$`)
	scopeRE       = regexp.MustCompile(`^[\x21\x23-\x5b\x5d-\x7e]{1,256}$`) // RFC 6749 §3.3 scope-token
	chainHashRE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	ckptKIDRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	b64KeyRE      = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	b64SigRE      = regexp.MustCompile(`^[A-Za-z0-9_-]{86}$`)
)

// Validate reports whether e carries only what the boundary allows: known enums, ids
// of the expected shapes, a provider key, a version string. It does not check that the
// fields fit the type (a heartbeat with a connection id is refused too).
func (e Event) Validate() error {
	var errs []error
	bad := func(field string) {
		errs = append(errs, fmt.Errorf("controlplane: event %s is not allowed here", field))
	}
	if !idRE.MatchString(e.ID) {
		bad("id")
	}
	if !oneOf(e.Type, EventTypes) {
		bad("type")
	}
	if e.At.IsZero() {
		bad("at")
	}
	if e.WorkspaceID != "" && !idRE.MatchString(e.WorkspaceID) {
		bad("workspace_id")
	}
	if e.ConnectionID != "" && !idRE.MatchString(e.ConnectionID) {
		bad("connection_id")
	}
	if e.Provider != "" && !providerKeyRE.MatchString(e.Provider) {
		bad("provider")
	}
	if e.Status != "" && !oneOf(e.Status, statuses) {
		bad("status")
	}
	if e.ErrorCode != "" && !oneOf(e.ErrorCode, errorCodes) {
		bad("error_code")
	}
	if e.Version != "" && !versionRE.MatchString(e.Version) {
		bad("version")
	}
	if e.Health != "" && e.Health != HealthOK && e.Health != HealthDegraded {
		bad("health")
	}
	if e.DeploymentID != "" && (!deploymentRE.MatchString(e.DeploymentID) || (e.Type != EventHeartbeat && e.Type != EventConfigRefused)) {
		bad("deployment_id")
	}
	if e.ConfigVersion < 0 || (e.ConfigVersion != 0 && e.Type != EventConfigRefused) {
		bad("config_version")
	}
	for _, c := range e.Counts {
		if !idRE.MatchString(c.WorkspaceID) || !providerKeyRE.MatchString(c.Provider) || !oneOf(c.Status, statuses) || c.N < 0 {
			bad("counts")
			break
		}
	}
	if c := e.Checkpoint; c != nil {
		if e.Type != EventAuditCheckpoint || c.Seq < 0 || !chainHashRE.MatchString(c.Hash) ||
			(c.EventID != "" && !idRE.MatchString(c.EventID)) || !ckptKIDRE.MatchString(c.KeyID) ||
			!b64KeyRE.MatchString(c.PublicKey) || !b64SigRE.MatchString(c.Signature) {
			bad("checkpoint")
		}
	}
	if a := e.Anomaly; a != nil {
		if e.Type != EventSecurityAnomaly || !oneOf(a.Kind, AnomalyKinds) || (a.APIKeyID != "" && !idRE.MatchString(a.APIKeyID)) ||
			a.Count < 0 || a.Baseline < 0 || a.WindowSeconds < 0 {
			bad("anomaly")
		}
	}
	switch e.Type {
	case EventSecurityAnomaly:
		if e.Anomaly == nil || e.WorkspaceID == "" || e.Status != "" || e.ErrorCode != "" || len(e.Counts) > 0 ||
			e.Version != "" || e.Checkpoint != nil {
			bad("field for a security anomaly")
		}
	case EventAuditCheckpoint:
		if e.Checkpoint == nil || e.WorkspaceID == "" || e.ConnectionID != "" || len(e.Counts) > 0 || e.Version != "" {
			bad("field for an audit checkpoint")
		}
	case EventConfigRefused:
		if e.ErrorCode == "" || e.ConnectionID != "" || len(e.Counts) > 0 || e.Version != "" || e.Checkpoint != nil {
			bad("field for a refused configuration")
		}
	case EventHeartbeat:
		if e.Version == "" || e.Health == "" || e.ConnectionID != "" || len(e.Counts) > 0 {
			bad("field for a heartbeat")
		}
	case EventCounts:
		if e.ConnectionID != "" || e.Version != "" {
			bad("field for counts")
		}
	default:
		if e.WorkspaceID == "" || e.ConnectionID == "" || len(e.Counts) > 0 || e.Version != "" {
			bad("field for a connection event")
		}
	}
	return errors.Join(errs...)
}

// Validate checks a document's shape: ids and keys, no duplicate provider in a workspace,
// and every URL absolute, without userinfo, query or fragment. The provider settings
// themselves are validated by the ConfigApplier, exactly as the providers API does.
func (d ConfigDocument) Validate() error {
	if d.Version < 1 {
		return errors.New("controlplane: config version must be at least 1")
	}
	seenWS := map[string]bool{}
	for i, ws := range d.Workspaces {
		if !idRE.MatchString(ws.WorkspaceID) {
			return fmt.Errorf("controlplane: workspaces[%d]: malformed workspace_id", i)
		}
		if seenWS[ws.WorkspaceID] {
			return fmt.Errorf("controlplane: workspaces[%d]: duplicate workspace", i)
		}
		seenWS[ws.WorkspaceID] = true
		seen := map[string]bool{}
		for j, p := range ws.Providers {
			if err := p.Validate(); err != nil {
				return fmt.Errorf("controlplane: workspaces[%d].providers[%d]: %w", i, j, err)
			}
			if seen[p.Key] {
				return fmt.Errorf("controlplane: workspaces[%d].providers[%d]: duplicate key %q", i, j, p.Key)
			}
			seen[p.Key] = true
		}
	}
	return nil
}

// Validate checks the fields the boundary constrains (see the type's documentation).
func (p ProviderConfigDoc) Validate() error {
	if !providerKeyRE.MatchString(p.Key) {
		return errors.New("malformed key")
	}
	if p.Template != "" && !providerKeyRE.MatchString(p.Template) {
		return errors.New("malformed template")
	}
	switch p.AuthMode {
	case "", "oauth2", "api_key", "basic", "oauth2_client_credentials", "jwt_bearer", "github_app":
	default:
		return errors.New("auth_mode must be oauth2, api_key, basic, oauth2_client_credentials, jwt_bearer or github_app")
	}
	if len(p.ClientID) > 256 || !printable(p.ClientID) {
		return errors.New("client_id must be at most 256 printable characters")
	}
	for _, s := range p.Scopes {
		if !scopeRE.MatchString(s) {
			return errors.New("a scope is not an RFC 6749 scope-token")
		}
	}
	urls := map[string]string{"authorization_url": p.AuthorizationURL, "token_url": p.TokenURL, "refresh_url": p.RefreshURL,
		"revocation_url": p.RevocationURL, "issuer": p.Issuer, "api_base_url": p.APIBaseURL, "health_check_url": p.HealthCheckURL}
	for i, u := range p.CallbackURLs {
		urls[fmt.Sprintf("callback_urls[%d]", i)] = u
	}
	for i, u := range p.ReturnURLs {
		urls[fmt.Sprintf("return_urls[%d]", i)] = u
	}
	for field, raw := range urls {
		if raw == "" {
			continue
		}
		if err := checkQuerylessURL(raw); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
	}
	return nil
}

// checkQuerylessURL accepts an absolute http(s) URL without userinfo, query or fragment.
func checkQuerylessURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || len(raw) > 2048 || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("must be an absolute http(s) URL") // err would echo the URL
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" {
		return errors.New("must not carry userinfo, a query or a fragment")
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

func oneOf[T comparable](v T, set []T) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

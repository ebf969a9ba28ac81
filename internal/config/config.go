package config

import (
	"crypto/ed25519"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/secret"
)

// Profile selects how strict validation is and which defaults apply.
type Profile string

// The two profiles.
const (
	ProfileDev        Profile = "dev"
	ProfileProduction Profile = "production"
)

// LogFormat is the slog handler to use.
type LogFormat string

// The log formats.
const (
	LogFormatJSON LogFormat = "json"
	LogFormatText LogFormat = "text"
)

// The environment variables (and YAML keys) that make up the configuration contract.
const (
	EnvProfile                     = "AUTHPIPE_PROFILE"
	EnvListenAddr                  = "AUTHPIPE_LISTEN_ADDR"
	EnvDevAllowNetworkListen       = "AUTHPIPE_DEV_ALLOW_NETWORK_LISTEN"
	EnvOpsListenAddr               = "AUTHPIPE_OPS_LISTEN_ADDR"
	EnvPublicURL                   = "AUTHPIPE_PUBLIC_URL"
	EnvDatabaseURL                 = "AUTHPIPE_DATABASE_URL"
	EnvDatabaseAllowPlaintext      = "AUTHPIPE_DATABASE_ALLOW_PLAINTEXT"
	EnvDatabaseListenURL           = "AUTHPIPE_DATABASE_LISTEN_URL"
	EnvKEKURI                      = "AUTHPIPE_KEK_URI"
	EnvKEKPreviousURIs             = "AUTHPIPE_KEK_PREVIOUS_URIS"
	EnvClientSecretKEKURI          = "AUTHPIPE_CLIENT_SECRET_KEK_URI"
	EnvClientSecretKEKPreviousURIs = "AUTHPIPE_CLIENT_SECRET_KEK_PREVIOUS_URIS"
	EnvDEKCacheTTL                 = "AUTHPIPE_DEK_CACHE_TTL"
	EnvBootstrapAPIKey             = "AUTHPIPE_BOOTSTRAP_API_KEY"
	EnvOutboundAllowCIDRs          = "AUTHPIPE_OUTBOUND_ALLOW_CIDRS"
	EnvOutboundCAFile              = "AUTHPIPE_OUTBOUND_CA_FILE"
	EnvTrustedProxies              = "AUTHPIPE_TRUSTED_PROXIES"
	EnvRateLimitPerKey             = "AUTHPIPE_RATE_LIMIT_PER_KEY"
	EnvRateLimitPerIP              = "AUTHPIPE_RATE_LIMIT_PER_IP"
	EnvRefreshSchedule             = "AUTHPIPE_REFRESH_SCHEDULE"
	EnvRefreshLead                 = "AUTHPIPE_REFRESH_LEAD"
	EnvForcedRefreshInterval       = "AUTHPIPE_FORCED_REFRESH_INTERVAL"
	EnvAnomalyWindow               = "AUTHPIPE_ANOMALY_WINDOW"
	EnvAnomalyKeyConnections       = "AUTHPIPE_ANOMALY_KEY_CONNECTIONS"
	EnvAnomalyRefusedReads         = "AUTHPIPE_ANOMALY_REFUSED_READS"
	EnvAnomalyClientWarmup         = "AUTHPIPE_ANOMALY_CLIENT_WARMUP"
	EnvAnomalyClientsPerKey        = "AUTHPIPE_ANOMALY_CLIENTS_PER_KEY"
	EnvAnomalyProviderFailures     = "AUTHPIPE_ANOMALY_PROVIDER_FAILURES"
	EnvAnomalyProviderNeedsReauth  = "AUTHPIPE_ANOMALY_PROVIDER_NEEDS_REAUTH"
	EnvAnomalyRefreshStorm         = "AUTHPIPE_ANOMALY_REFRESH_STORM"
	EnvRefreshTokenExpiringLead    = "AUTHPIPE_REFRESH_TOKEN_EXPIRING_LEAD"
	EnvRetention                   = "AUTHPIPE_RETENTION"
	EnvAuditRetention              = "AUTHPIPE_AUDIT_RETENTION"
	EnvAuditCheckpointFile         = "AUTHPIPE_AUDIT_CHECKPOINT_FILE"
	EnvControlPlaneURL             = "AUTHPIPE_CONTROL_PLANE_URL"
	EnvControlPlaneToken           = "AUTHPIPE_CONTROL_PLANE_TOKEN"
	EnvControlPlanePins            = "AUTHPIPE_CONTROL_PLANE_PINS"
	EnvControlPlanePublicKey       = "AUTHPIPE_CONTROL_PLANE_PUBLIC_KEY"
	EnvTLSCertFile                 = "AUTHPIPE_TLS_CERT_FILE"
	EnvTLSKeyFile                  = "AUTHPIPE_TLS_KEY_FILE"
	EnvTLSClientCAFile             = "AUTHPIPE_TLS_CLIENT_CA_FILE"
	EnvShutdownTimeout             = "AUTHPIPE_SHUTDOWN_TIMEOUT"
	EnvShutdownDelay               = "AUTHPIPE_SHUTDOWN_DELAY"
	EnvLogLevel                    = "AUTHPIPE_LOG_LEVEL"
	EnvLogFormat                   = "AUTHPIPE_LOG_FORMAT"
	EnvAccessLog                   = "AUTHPIPE_ACCESS_LOG"
)

// MaxRetention is the longest a disconnected credential may be kept for reconnection.
const MaxRetention = 720 * time.Hour

// Config is the validated configuration of `authpipe-proxy serve`. Build it with Load;
// a Config built by hand should be checked with Validate. It formats, logs and
// marshals with every secret redacted.
type Config struct {
	Profile    Profile
	ListenAddr string
	// DevAllowNetworkListen lets the dev profile listen on a non-loopback address.
	DevAllowNetworkListen bool
	// OpsListenAddr, when set, is where /healthz, /readyz and /metrics are served instead
	// of ListenAddr.
	OpsListenAddr string
	// PublicURL is an absolute http(s) URL without path, query or fragment; Load trims
	// a trailing slash.
	PublicURL string
	// DatabaseURL is sqlite://PATH or postgres://… / postgresql://…. It may carry a
	// password: log RedactedDatabaseURL, never this field.
	DatabaseURL            string
	DatabaseAllowPlaintext bool
	// DatabaseListenURL, when set, is the direct PostgreSQL connection that the connection
	// cache's LISTEN uses while DatabaseURL goes through a transaction-pooling PgBouncer.
	// It may carry a password too.
	DatabaseListenURL string

	KEKURI                      string
	KEKPreviousURIs             []string
	ClientSecretKEKURI          string
	ClientSecretKEKPreviousURIs []string
	DEKCacheTTL                 time.Duration

	BootstrapAPIKey secret.Secret

	// OutboundAllowCIDRs are the private/loopback ranges outbound calls may reach.
	// OutboundAllowCIDRsSet tells an explicit setting (possibly empty: none) from the
	// profile default.
	OutboundAllowCIDRs    []netip.Prefix
	OutboundAllowCIDRsSet bool
	TrustedProxies        []netip.Prefix
	// RateLimitPerKey meters each API key; RateLimitPerIP each client address on
	// unauthenticated routes and failed authentications (ratelimit.go).
	RateLimitPerKey RateLimit
	RateLimitPerIP  RateLimit
	// OutboundCAFile is a PEM bundle trusted by outbound calls besides the system roots.
	OutboundCAFile string

	// RefreshSchedule is a cron spec (5 fields or a descriptor such as "@every 30s").
	RefreshSchedule string
	RefreshLead     time.Duration
	// ForcedRefreshInterval: at most one forced refresh per connection per interval.
	ForcedRefreshInterval time.Duration
	// Anomaly detection over the counted reads (internal/audit/anomaly.go): the window,
	// distinct connections one key may read in it (and 10x its baseline), refused reads.
	AnomalyWindow         time.Duration
	AnomalyKeyConnections int64
	AnomalyRefusedReads   int64
	// The client baseline's warm-up and size; per provider, failed refreshes and
	// needs_reauth transitions per window; per connection, refresh attempts per window.
	AnomalyClientWarmup        time.Duration
	AnomalyClientsPerKey       int64
	AnomalyProviderFailures    int64
	AnomalyProviderNeedsReauth int64
	AnomalyRefreshStorm        int64
	// RefreshTokenExpiringLead: webhook connection.expiring this long before a refresh
	// token's end.
	RefreshTokenExpiringLead time.Duration
	Retention                time.Duration
	AuditRetention           time.Duration
	// AuditCheckpointFile is where signed audit checkpoints are appended (JSON lines);
	// empty = the log only.
	AuditCheckpointFile string

	ControlPlaneURL   string
	ControlPlaneToken secret.Secret
	// ControlPlanePins are "sha256/<base64>" SPKI pins (RFC 7469 section 2.4) of the
	// control plane's chain; empty = chain verification only.
	ControlPlanePins []string
	// ControlPlanePublicKey is the pinned Ed25519 key that signs pulled configuration.
	ControlPlanePublicKey ed25519.PublicKey

	TLSCertFile     string
	TLSKeyFile      string
	TLSClientCAFile string

	ShutdownTimeout time.Duration
	// ShutdownDelay is how long /readyz answers 503 before the listener closes.
	ShutdownDelay time.Duration
	LogLevel      slog.Level
	LogFormat     LogFormat
	AccessLog     string // summary, all or off
}

// Production reports whether the production profile is selected.
func (c Config) Production() bool { return c.Profile == ProfileProduction }

// CallbackURL is the default OAuth redirect URI: <public url>/v1/oauth/callback.
func (c Config) CallbackURL() string {
	return strings.TrimSuffix(c.PublicURL, "/") + "/v1/oauth/callback"
}

// TLSEnabled reports whether the server should serve HTTPS.
func (c Config) TLSEnabled() bool { return c.TLSCertFile != "" && c.TLSKeyFile != "" }

// ControlPlaneEnabled reports whether a control plane is configured (else standalone).
func (c Config) ControlPlaneEnabled() bool { return c.ControlPlaneURL != "" }

// DatabaseDialect is "sqlite" or "postgres" (or "" for an unrecognised URL).
func (c Config) DatabaseDialect() string {
	scheme, _, _ := strings.Cut(c.DatabaseURL, "://")
	switch strings.ToLower(scheme) {
	case "sqlite":
		return "sqlite"
	case "postgres", "postgresql":
		return "postgres"
	default:
		return ""
	}
}

// SQLitePath returns the file path of a sqlite:// DatabaseURL (query stripped):
// sqlite:///var/lib/a.db → /var/lib/a.db, sqlite://./data/a.db → ./data/a.db.
func (c Config) SQLitePath() (string, bool) {
	if c.DatabaseDialect() != "sqlite" {
		return "", false
	}
	_, rest, _ := strings.Cut(c.DatabaseURL, "://")
	path, _, _ := strings.Cut(rest, "?")
	return path, path != ""
}

// RedactedDatabaseURL is DatabaseURL with any password replaced by "xxxxx".
func (c Config) RedactedDatabaseURL() string { return redactURI(c.DatabaseURL) }

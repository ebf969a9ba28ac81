package config

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/secret"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil"
)

// Setting describes one configuration variable. Settings returns the table that drives
// parsing, defaults, flags, the start-up log line and docs/configuration.md.
type Setting struct {
	// Name is the environment variable and the long YAML key: AUTHPIPE_LISTEN_ADDR.
	Name string
	// Flag is the command-line flag without dashes: listen-addr.
	Flag string
	// Key is the short YAML key: listen_addr.
	Key string
	// Default is the value applied when the setting is not given; "" means none.
	Default string
	// DevOnlyDefault means Default applies in the dev profile only (none in production).
	DevOnlyDefault bool
	// Description says what the setting does, for humans.
	Description string
	// Secret marks a value that is never shown, logged or echoed.
	Secret bool
	// List marks a comma-separated list (a YAML sequence in the file).
	List bool
	// Bool marks a true/false setting (a flag that may be given without a value).
	Bool bool
	// FromFile means NAME_FILE may name a file holding the value instead (secrets mounted
	// by a CSI driver or an agent); setting both NAME and NAME_FILE is an error.
	FromFile bool
	// EmptyIsValue means an explicitly empty value is a value ("set but empty = none"),
	// where for every other setting an empty value counts as not set.
	EmptyIsValue bool

	// parse stores raw into c and returns a problem ("" when fine). It must not
	// echo raw for a secret.
	parse func(c *Config, raw string) string
	// show renders the current value for logs, secrets redacted.
	show func(c *Config) string
}

// Settings returns the configuration table, in documentation order. The profile comes
// first: defaults of later settings depend on it.
func Settings() []Setting {
	return []Setting{
		setting(EnvProfile, "dev", "`dev` or `production`. Production refuses SQLite, a local KEK in a plain file, plain-HTTP public and control-plane URLs, loopback outbound ranges, PostgreSQL without TLS and Vault Transit over plain HTTP.",
			field{
				parse: func(c *Config, raw string) string { c.Profile = Profile(strings.ToLower(raw)); return "" },
				show:  func(c *Config) string { return string(c.Profile) },
			}),
		setting(EnvListenAddr, "127.0.0.1:8080", "Address (host:port) the HTTP server listens on.", stringField(func(c *Config) *string { return &c.ListenAddr })),
		boolSetting(EnvDevAllowNetworkListen, "Let the dev profile listen on a non-loopback `AUTHPIPE_LISTEN_ADDR` (all interfaces, a pod IP). Without it the dev profile refuses to: its relaxations (SQLite, a generated local KEK, loopback outbound ranges, plain-HTTP URLs) are only safe when nothing but the host reaches the server. Ignored in production.", func(c *Config) *bool { return &c.DevAllowNetworkListen }),
		setting(EnvOpsListenAddr, "", "Address (host:port) of a second listener that serves `/healthz`, `/readyz` and `/metrics`, which the main listener then no longer serves (so an Ingress in front of it never exposes them); HTTPS like the main one when TLS is configured. Unset = they stay on `AUTHPIPE_LISTEN_ADDR`.", stringField(func(c *Config) *string { return &c.OpsListenAddr })),
		setting(EnvPublicURL, "http://127.0.0.1:8080", "The URL end users' browsers reach: absolute `http(s)`, no path, query or fragment (a trailing slash is dropped). The default OAuth callback is `<public url>/v1/oauth/callback`.",
			field{
				parse: func(c *Config, raw string) string { c.PublicURL = strings.TrimSuffix(raw, "/"); return "" },
				show:  func(c *Config) string { return redactURI(c.PublicURL) },
			}),
		fromFile(setting(EnvDatabaseURL, "sqlite://./data/authpipe.db", "`sqlite:///abs/path.db`, `sqlite://./relative.db` or `postgres://user@host/db?sslmode=verify-full` (`postgresql://` too). A password in it is redacted everywhere it is shown.",
			field{
				parse: func(c *Config, raw string) string { c.DatabaseURL = raw; return "" },
				show:  func(c *Config) string { return redactURI(c.DatabaseURL) },
			})),
		boolSetting(EnvDatabaseAllowPlaintext, "Allow a PostgreSQL connection without TLS (`sslmode` missing, `disable`, `allow` or `prefer`) in the production profile.", func(c *Config) *bool { return &c.DatabaseAllowPlaintext }),
		fromFile(setting(EnvDatabaseListenURL, "", "A direct `postgres://` connection to the same database, used only for `LISTEN` (the connection cache's cross-replica invalidation), when `AUTHPIPE_DATABASE_URL` goes through a transaction-pooling PgBouncer, which cannot carry `LISTEN`. Unset = `LISTEN` on `AUTHPIPE_DATABASE_URL`; when that delivers nothing (a pooler), another replica's change reaches the cache through its TTL (at most 1 s) instead, and `/readyz` says `\"cache_invalidation\":\"ttl\"`. Same TLS rules as `AUTHPIPE_DATABASE_URL`; a password in it is redacted.",
			field{
				parse: func(c *Config, raw string) string { c.DatabaseListenURL = raw; return "" },
				show:  func(c *Config) string { return redactURI(c.DatabaseListenURL) },
			})),
		setting(EnvKEKURI, "local://./data/kek.key", "The KEK that wraps the credential DEKs: `local:///path/key` (dev: created 0600 when missing), `awskms://<key id or arn>?region=..&endpoint=..`, `vault-transit://<host:port>/<mount>/<key>[?tls=false]`, `pkcs11:token=..;object=..?module-path=..&pin-source=..`, `gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K` or `azurekv://<vault>.vault.azure.net/keys/<name>[/<version>]` (or `<hsm>.managedhsm.azure.net`); see KEK backends below.", uriField(func(c *Config) *string { return &c.KEKURI })),
		listSetting(EnvKEKPreviousURIs, "Comma-separated earlier credential KEKs, used only to unwrap until rotation has re-wrapped everything (a `local://` one is allowed here in production, to migrate away from it).", uriListField(func(c *Config) *[]string { return &c.KEKPreviousURIs })),
		setting(EnvClientSecretKEKURI, "local://./data/client-secret-kek.key", "The KEK for OAuth client secrets, same forms as `AUTHPIPE_KEK_URI`; must differ from it.", uriField(func(c *Config) *string { return &c.ClientSecretKEKURI })),
		listSetting(EnvClientSecretKEKPreviousURIs, "Comma-separated earlier client-secret KEKs, used only to unwrap until rotation has re-wrapped everything.", uriListField(func(c *Config) *[]string { return &c.ClientSecretKEKPreviousURIs })),
		setting(EnvDEKCacheTTL, "15m", "How long an unwrapped DEK stays in the in-memory cache.", durationField(func(c *Config) *time.Duration { return &c.DEKCacheTTL })),
		secretSetting(EnvBootstrapAPIKey, "An admin key (`ap_` and at least 32 URL-safe characters) with the scopes `admin` and `workspaces:write` in workspace `default`, ensured at start-up. Prefer the environment to a flag.", func(c *Config) *secret.Secret { return &c.BootstrapAPIKey }),
		func() Setting {
			s := listSetting(EnvOutboundAllowCIDRs, "Private/loopback ranges that outbound calls (token, revoke, forwarding) may reach. Set but empty = none. Production refuses any range that contains a loopback address.", prefixField(func(c *Config) *[]netip.Prefix { return &c.OutboundAllowCIDRs }))
			s.Default = "127.0.0.0/8,::1/128"
			s.DevOnlyDefault = true
			s.EmptyIsValue = true
			return s
		}(),
		setting(EnvOutboundCAFile, "", "PEM bundle of extra CAs that outbound calls (providers, control plane) trust besides the system roots, e.g. a corporate CA.", stringField(func(c *Config) *string { return &c.OutboundCAFile })),
		listSetting(EnvTrustedProxies, "Comma-separated ranges of reverse proxies whose `X-Forwarded-For` is believed.", prefixField(func(c *Config) *[]netip.Prefix { return &c.TrustedProxies })),
		setting(EnvRateLimitPerKey, "1000/s,burst=2000", "Requests per API key: `<n>/s` or `<n>/m`, optionally `,burst=<n>` (default burst: twice the rate), or `off`. Over it: `429` with `Retry-After`.", rateLimitField(func(c *Config) *RateLimit { return &c.RateLimitPerKey })),
		setting(EnvRateLimitPerIP, "20/s,burst=100", "Requests per client address (through `AUTHPIPE_TRUSTED_PROXIES`) to the unauthenticated connect and callback routes, and failed authentications; same syntax.", rateLimitField(func(c *Config) *RateLimit { return &c.RateLimitPerIP })),
		setting(EnvRefreshSchedule, "@every 30s", "Cron spec of the refresh sweep: five fields or a descriptor such as `@every 30s` or `@hourly`.", stringField(func(c *Config) *string { return &c.RefreshSchedule })),
		setting(EnvRefreshLead, "10m", "Refresh a token this long before it expires.", durationField(func(c *Config) *time.Duration { return &c.RefreshLead })),
		setting(EnvAnomalyWindow, "1m", "Anomaly detection window (docs/incident-response.md): findings are counted per API key per window.", durationField(func(c *Config) *time.Duration { return &c.AnomalyWindow })),
		setting(EnvAnomalyKeyConnections, "1000", "A key that reads at least this many distinct connections in one window, and ten times its own baseline, is a `security.anomaly` (`key_connections_burst`).", countField(func(c *Config) *int64 { return &c.AnomalyKeyConnections })),
		setting(EnvAnomalyRefusedReads, "500", "A key refused at least this many reads in one window (401, 403, 404, 409, 410, 423) is a `security.anomaly` (`refused_read_burst`).", countField(func(c *Config) *int64 { return &c.AnomalyRefusedReads })),
		setting(EnvAnomalyClientWarmup, "24h", "A key's warm-up, from the first client the anomaly detection sees it read from: the client addresses (an IPv6 address by its /64) and mTLS client certificates it uses until then are learnt; after it, a read from one it never used is a `security.anomaly` (`new_client_address`, `new_client_certificate`), once per client, at most 5 per key per window (then one with the count).", durationField(func(c *Config) *time.Duration { return &c.AnomalyClientWarmup })),
		setting(EnvAnomalyClientsPerKey, "64", "Clients (addresses, certificates: each kept as a keyed hash, never in clear) the baseline keeps per API key, the most recently seen.", countField(func(c *Config) *int64 { return &c.AnomalyClientsPerKey })),
		setting(EnvAnomalyProviderFailures, "100", "Failed refresh attempts of one provider in one window, and ten times its own baseline, that are a `security.anomaly` (`provider_refresh_failures`).", countField(func(c *Config) *int64 { return &c.AnomalyProviderFailures })),
		setting(EnvAnomalyProviderNeedsReauth, "50", "Connections of one provider that a refresh put in `needs_reauth` in one window, and ten times its baseline, that are a `security.anomaly` (`provider_needs_reauth_burst`).", countField(func(c *Config) *int64 { return &c.AnomalyProviderNeedsReauth })),
		setting(EnvAnomalyRefreshStorm, "30", "Refresh attempts (refreshes and mints, served or failed) of one connection in one window that are a `security.anomaly` (`refresh_storm`); a schedule makes one per token lifetime.", countField(func(c *Config) *int64 { return &c.AnomalyRefreshStorm })),
		setting(EnvForcedRefreshInterval, "30s", "At most one forced refresh (`POST /v1/connections/{id}/refresh`, or a provider's `401` to a forwarded call) per connection per interval, across replicas; callers inside it get the last refresh's token.", durationField(func(c *Config) *time.Duration { return &c.ForcedRefreshInterval })),
		setting(EnvRefreshTokenExpiringLead, "168h", "Send webhook `connection.expiring` this long before a connection's refresh token ends (`refresh_token_expires_at`: the provider's `refresh_token_expires_in` or the like, or an import's value), once per connection per expiry; the end user must reconnect before then.", durationField(func(c *Config) *time.Duration { return &c.RefreshTokenExpiringLead })),
		setting(EnvRetention, "720h", "How long a disconnected credential that could not be revoked is kept for reconnection (at most `720h`).", durationField(func(c *Config) *time.Duration { return &c.Retention })),
		setting(EnvAuditRetention, "2160h", "How long audit events are kept; older ones are pruned, and verification starts from a signed checkpoint of the last pruned event.", durationField(func(c *Config) *time.Duration { return &c.AuditRetention })),
		setting(EnvAuditCheckpointFile, "", "File to which signed checkpoints of every workspace's audit chain head are appended (JSON lines; ship it off the host). Checkpoints are also logged. `authpipe-proxy audit verify --checkpoint FILE` uses them to detect a deleted tail or a rewritten chain.", stringField(func(c *Config) *string { return &c.AuditCheckpointFile })),
		setting(EnvControlPlaneURL, "", "Base URL of the cloud control plane (`https` in production); unset = standalone. Needs `AUTHPIPE_CONTROL_PLANE_TOKEN`.",
			field{
				parse: func(c *Config, raw string) string { c.ControlPlaneURL = raw; return "" },
				show:  func(c *Config) string { return redactURI(c.ControlPlaneURL) },
			}),
		setting(EnvControlPlanePublicKey, "", "The control plane's Ed25519 public key, pinned: base64 of its 32 bytes or a PEM `PUBLIC KEY`. Pulled configuration is applied only with a valid signature by it; unset = configuration is not pulled (metadata is still pushed).",
			field{parse: parseEd25519Key, show: func(c *Config) string { return base64.StdEncoding.EncodeToString(c.ControlPlanePublicKey) }}),
		secretSetting(EnvControlPlaneToken, "Bearer token for the control plane; set together with `AUTHPIPE_CONTROL_PLANE_URL`.", func(c *Config) *secret.Secret { return &c.ControlPlaneToken }),
		listSetting(EnvControlPlanePins, "Comma-separated SPKI pins `sha256/<base64 of SHA-256(SubjectPublicKeyInfo)>` (RFC 7469) of the control plane: some certificate of its verified chain must carry one. List the old and the new key together to rotate. Empty = chain verification only.", pinListField(func(c *Config) *[]string { return &c.ControlPlanePins })),
		setting(EnvTLSCertFile, "", "PEM certificate chain: serve HTTPS (TLS 1.3 only). Set together with `AUTHPIPE_TLS_KEY_FILE`; unset = plain HTTP.", stringField(func(c *Config) *string { return &c.TLSCertFile })),
		setting(EnvTLSKeyFile, "", "PEM private key for `AUTHPIPE_TLS_CERT_FILE`.", stringField(func(c *Config) *string { return &c.TLSKeyFile })),
		setting(EnvTLSClientCAFile, "", "PEM CA bundle for client certificates (needs the TLS certificate and key). A certificate, when presented, must chain to it; API-key requests must then present one that names their key (URI SAN `authpipe:apikey:<key id>`). Browser routes (connect, OAuth callback) and health probes need none.", stringField(func(c *Config) *string { return &c.TLSClientCAFile })),
		setting(EnvShutdownDelay, "5s", "On SIGTERM or SIGINT, how long `/readyz` answers `503` (so load balancers and Kubernetes stop sending new requests) before the listener closes; `0s` = close at once.", durationField(func(c *Config) *time.Duration { return &c.ShutdownDelay })),
		setting(EnvShutdownTimeout, "15s", "After the shutdown delay, how long a graceful shutdown waits for requests in flight.", durationField(func(c *Config) *time.Duration { return &c.ShutdownTimeout })),
		setting(EnvLogLevel, "info", "`debug`, `info`, `warn` or `error`.",
			field{
				parse: func(c *Config, raw string) string {
					switch strings.ToLower(raw) {
					case "debug":
						c.LogLevel = slog.LevelDebug
					case "info":
						c.LogLevel = slog.LevelInfo
					case "warn":
						c.LogLevel = slog.LevelWarn
					case "error":
						c.LogLevel = slog.LevelError
					default:
						return fmt.Sprintf("%q is not debug, info, warn or error", raw)
					}
					return ""
				},
				show: func(c *Config) string { return strings.ToLower(c.LogLevel.String()) },
			}),
		setting(EnvLogFormat, "json", "`json` or `text`.",
			field{
				parse: func(c *Config, raw string) string { c.LogFormat = LogFormat(strings.ToLower(raw)); return "" },
				show:  func(c *Config) string { return string(c.LogFormat) },
			}),
		setting(EnvAccessLog, "summary", "Access log: `summary` writes one line per non-2xx answer and, every 10 s, one line per method, route and status counting the 2xx answers (with mean and slowest latency); `all` writes one line per request; `off` none. Per-request lines cost measurable time at high request rates (`go test -bench BenchmarkAccessLog ./proxy`).",
			field{
				parse: func(c *Config, raw string) string {
					switch v := strings.ToLower(raw); v {
					case "summary", "all", "off":
						c.AccessLog = v
						return ""
					}
					return fmt.Sprintf("%q is not summary, all or off", raw)
				},
				show: func(c *Config) string { return c.AccessLog },
			}),
	}
}

// parseEd25519Key accepts base64 (standard or URL-safe, padded or not) of a raw 32-byte
// Ed25519 public key, or a PEM "PUBLIC KEY" block (PKIX, RFC 8410).
func parseEd25519Key(c *Config, raw string) string {
	raw = strings.TrimSpace(raw)
	if block, _ := pem.Decode([]byte(raw)); block != nil {
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		pub, ok := k.(ed25519.PublicKey)
		if err != nil || !ok {
			return "the PEM block is not an Ed25519 PUBLIC KEY"
		}
		c.ControlPlanePublicKey = pub
		return ""
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(raw); err == nil && len(b) == ed25519.PublicKeySize {
			c.ControlPlanePublicKey = ed25519.PublicKey(b)
			return ""
		}
	}
	return "is not an Ed25519 public key (base64 of 32 bytes, or a PEM PUBLIC KEY)"
}

// field binds a setting to its Config field.
type field struct {
	parse func(c *Config, raw string) string
	show  func(c *Config) string
}

func setting(name, def, desc string, f field) Setting {
	short := strings.ToLower(strings.TrimPrefix(name, "AUTHPIPE_"))
	return Setting{
		Name:        name,
		Flag:        strings.ReplaceAll(short, "_", "-"),
		Key:         short,
		Default:     def,
		Description: desc,
		parse:       f.parse,
		show:        f.show,
	}
}

// fromFile gives a setting a NAME_FILE variant (values that may carry a password).
func fromFile(s Setting) Setting {
	s.FromFile = true
	return s
}

func listSetting(name, desc string, f field) Setting {
	s := setting(name, "", desc, f)
	s.List = true
	return s
}

func boolSetting(name, desc string, p func(*Config) *bool) Setting {
	s := setting(name, "false", desc, field{
		parse: func(c *Config, raw string) string {
			b, err := strconv.ParseBool(raw)
			if err != nil {
				return fmt.Sprintf("%q is not true or false", raw)
			}
			*p(c) = b
			return ""
		},
		show: func(c *Config) string { return strconv.FormatBool(*p(c)) },
	})
	s.Bool = true
	return s
}

func secretSetting(name, desc string, p func(*Config) *secret.Secret) Setting {
	s := setting(name, "", desc, field{
		parse: func(c *Config, raw string) string { *p(c) = secret.New(raw); return "" },
		show: func(c *Config) string {
			if p(c).IsZero() {
				return ""
			}
			return secret.Redacted
		},
	})
	s.Secret = true
	s.FromFile = true
	return s
}

func stringField(p func(*Config) *string) field {
	return field{
		parse: func(c *Config, raw string) string { *p(c) = raw; return "" },
		show:  func(c *Config) string { return *p(c) },
	}
}

func uriField(p func(*Config) *string) field {
	return field{
		parse: func(c *Config, raw string) string { *p(c) = raw; return "" },
		show:  func(c *Config) string { return redactURI(*p(c)) },
	}
}

func uriListField(p func(*Config) *[]string) field {
	return field{
		parse: func(c *Config, raw string) string { *p(c) = splitList(raw); return "" },
		show: func(c *Config) string {
			out := make([]string, 0, len(*p(c)))
			for _, u := range *p(c) {
				out = append(out, redactURI(u))
			}
			return strings.Join(out, ",")
		},
	}
}

// pinListField parses a comma-separated list of SPKI pins, "sha256/" + the standard
// base64 of 32 bytes (RFC 7469 section 2.4). Pins are public values: shown as they are.
func pinListField(p func(*Config) *[]string) field {
	return field{
		parse: func(c *Config, raw string) string {
			pins := splitList(raw)
			for i, pin := range pins {
				if _, ok := tlsutil.ParsePin(pin); !ok {
					return fmt.Sprintf("entry %d is not sha256/<base64 of 32 bytes>", i+1)
				}
			}
			*p(c) = pins
			return ""
		},
		show: func(c *Config) string { return strings.Join(*p(c), ",") },
	}
}

// countField is a whole number from 1.
func countField(p func(*Config) *int64) field {
	return field{
		parse: func(c *Config, raw string) string {
			n, err := strconv.ParseInt(raw, 10, 64)
			if err != nil || n < 1 {
				return fmt.Sprintf("%q is not a whole number from 1", raw)
			}
			*p(c) = n
			return ""
		},
		show: func(c *Config) string { return strconv.FormatInt(*p(c), 10) },
	}
}

func durationField(p func(*Config) *time.Duration) field {
	return field{
		parse: func(c *Config, raw string) string {
			d, err := time.ParseDuration(raw)
			if err != nil {
				return fmt.Sprintf("%q is not a duration (use units h, m, s: e.g. 720h, 10m, 30s)", raw)
			}
			*p(c) = d
			return ""
		},
		show: func(c *Config) string { return formatDuration(*p(c)) },
	}
}

func prefixField(p func(*Config) *[]netip.Prefix) field {
	return field{
		parse: func(c *Config, raw string) string {
			var out []netip.Prefix
			var bad []string
			for _, s := range splitList(raw) {
				pfx, msg := parsePrefix(s)
				if msg != "" {
					bad = append(bad, msg)
					continue
				}
				out = append(out, pfx)
			}
			if len(bad) > 0 {
				return strings.Join(bad, ", ")
			}
			*p(c) = out
			return ""
		},
		show: func(c *Config) string {
			out := make([]string, 0, len(*p(c)))
			for _, pfx := range *p(c) {
				out = append(out, pfx.String())
			}
			return strings.Join(out, ",")
		},
	}
}

// parsePrefix accepts a CIDR prefix or a bare address (a single-host prefix). A prefix
// with host bits set is refused rather than silently masked.
func parsePrefix(s string) (netip.Prefix, string) {
	if !strings.Contains(s, "/") {
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR prefix (e.g. 10.0.0.0/8, fd00::/8)", s)
		}
		return netip.PrefixFrom(addr, addr.BitLen()), ""
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR prefix (e.g. 10.0.0.0/8, fd00::/8)", s)
	}
	if pfx != pfx.Masked() {
		return netip.Prefix{}, fmt.Sprintf("%q has host bits set (did you mean %s?)", s, pfx.Masked())
	}
	return pfx, ""
}

// splitList splits a comma-separated list, trimming blanks and dropping empty entries.
func splitList(raw string) []string {
	var out []string
	for _, s := range strings.Split(raw, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// formatDuration prints 720h rather than 720h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

package config_test

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/config"
)

// env turns a map into a lookupEnv function.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// with returns a copy of base with the given key/value pairs added (or replaced).
func with(base map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(base)+len(kv)/2)
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

const (
	dbPassword   = "hunter2-db-password"
	bootstrapKey = "ap_0123456789abcdefghijklmnopqrstuvwxyz_-AB"
	cpToken      = "cp-token-very-secret-value"
)

// prodEnv is a production configuration that passes every rule.
func prodEnv() map[string]string {
	return map[string]string{
		config.EnvProfile:            "production",
		config.EnvPublicURL:          "https://proxy.example.com",
		config.EnvDatabaseURL:        "postgres://authpipe:" + dbPassword + "@db.internal:5432/authpipe?sslmode=verify-full",
		config.EnvKEKURI:             "awskms://arn:aws:kms:eu-west-1:111122223333:key/abcd-1234?region=eu-west-1",
		config.EnvClientSecretKEKURI: "vault-transit://vault.internal:8200/transit/client-secrets",
	}
}

// validationError asserts err is a *ValidationError and returns it.
func validationError(t *testing.T, err error) *config.ValidationError {
	t.Helper()
	var verr *config.ValidationError
	require.ErrorAs(t, err, &verr)
	require.NotEmpty(t, verr.Issues)
	require.NotContains(t, verr.Error(), "\n")
	return verr
}

func TestLoadDevDefaultsWithEmptyEnv(t *testing.T) {
	cfg, err := config.Load(nil, env(nil))
	require.NoError(t, err)

	require.Equal(t, config.ProfileDev, cfg.Profile)
	require.Equal(t, "127.0.0.1:8080", cfg.ListenAddr)
	require.Equal(t, "http://127.0.0.1:8080", cfg.PublicURL)
	require.Equal(t, "http://127.0.0.1:8080/v1/oauth/callback", cfg.CallbackURL())
	require.Equal(t, "sqlite://./data/authpipe.db", cfg.DatabaseURL)
	require.Equal(t, "sqlite", cfg.DatabaseDialect())
	path, ok := cfg.SQLitePath()
	require.True(t, ok)
	require.Equal(t, "./data/authpipe.db", path)
	require.False(t, cfg.DatabaseAllowPlaintext)
	require.Equal(t, "local://./data/kek.key", cfg.KEKURI)
	require.Empty(t, cfg.KEKPreviousURIs)
	require.Equal(t, "local://./data/client-secret-kek.key", cfg.ClientSecretKEKURI)
	require.Empty(t, cfg.ClientSecretKEKPreviousURIs)
	require.True(t, cfg.BootstrapAPIKey.IsZero())
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, cfg.OutboundAllowCIDRs)
	require.False(t, cfg.OutboundAllowCIDRsSet)
	require.Empty(t, cfg.TrustedProxies)
	require.Equal(t, "@every 30s", cfg.RefreshSchedule)
	require.Equal(t, 10*time.Minute, cfg.RefreshLead)
	require.Equal(t, 30*time.Second, cfg.ForcedRefreshInterval)
	require.Equal(t, 720*time.Hour, cfg.Retention)
	require.Equal(t, 2160*time.Hour, cfg.AuditRetention)
	require.Equal(t, 15*time.Minute, cfg.DEKCacheTTL)
	require.Equal(t, 15*time.Second, cfg.ShutdownTimeout)
	require.Empty(t, cfg.ControlPlaneURL)
	require.False(t, cfg.ControlPlaneEnabled())
	require.True(t, cfg.ControlPlaneToken.IsZero())
	require.False(t, cfg.TLSEnabled())
	require.Equal(t, slog.LevelInfo, cfg.LogLevel)
	require.Equal(t, config.LogFormatJSON, cfg.LogFormat)
	require.NoError(t, cfg.Validate())
}

func TestLoadValidProduction(t *testing.T) {
	cfg, err := config.Load(nil, env(prodEnv()))
	require.NoError(t, err)
	require.True(t, cfg.Production())
	require.Empty(t, cfg.OutboundAllowCIDRs, "production has no loopback default")
	require.False(t, cfg.OutboundAllowCIDRsSet)
	require.Equal(t, "postgres", cfg.DatabaseDialect())
}

func TestOutboundAllowCIDRs(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name    string
		env     map[string]string
		want    []netip.Prefix
		wantSet bool
	}{
		{"dev unset: loopback", map[string]string{}, loopback, false},
		{"dev set but empty: none", map[string]string{config.EnvOutboundAllowCIDRs: ""}, nil, true},
		{"dev blank: none", map[string]string{config.EnvOutboundAllowCIDRs: "  "}, nil, true},
		{"dev explicit", map[string]string{config.EnvOutboundAllowCIDRs: "10.0.0.0/8, fd00::/8,192.168.1.7"},
			[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("192.168.1.7/32")}, true},
		{"production unset: none", prodEnv(), nil, false},
		{"production set but empty: none", with(prodEnv(), config.EnvOutboundAllowCIDRs, ""), nil, true},
		{"production private range", with(prodEnv(), config.EnvOutboundAllowCIDRs, "10.1.0.0/16"), []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(nil, env(tt.env))
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.OutboundAllowCIDRs)
			require.Equal(t, tt.wantSet, cfg.OutboundAllowCIDRsSet)
		})
	}
}

// TestRules drives every rule: each case names the variable that must be reported and
// a fragment of the message.
func TestRules(t *testing.T) {
	dev := map[string]string{}
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
		wantMsg string
	}{
		// production refusals
		{"production sqlite", with(prodEnv(), config.EnvDatabaseURL, "sqlite:///var/lib/authpipe.db"), config.EnvDatabaseURL, "SQLite is refused in the production profile"},
		{"production local KEK", with(prodEnv(), config.EnvKEKURI, "local:///etc/authpipe/kek.key"), config.EnvKEKURI, "a local KEK in a plain file"},
		{"production local client-secret KEK", with(prodEnv(), config.EnvClientSecretKEKURI, "local:///etc/authpipe/cs.key"), config.EnvClientSecretKEKURI, "a local KEK in a plain file"},
		{"production default KEKs", with(prodEnv(), config.EnvKEKURI, "", config.EnvClientSecretKEKURI, ""), config.EnvKEKURI, "a local KEK in a plain file"},
		{"production http public URL", with(prodEnv(), config.EnvPublicURL, "http://proxy.example.com"), config.EnvPublicURL, "plain HTTP"},
		{"production loopback outbound", with(prodEnv(), config.EnvOutboundAllowCIDRs, "10.0.0.0/8,127.0.0.1/32"), config.EnvOutboundAllowCIDRs, "127.0.0.1/32 contains loopback"},
		{"production v6 loopback outbound", with(prodEnv(), config.EnvOutboundAllowCIDRs, "::1"), config.EnvOutboundAllowCIDRs, "loopback"},
		{"production everything outbound", with(prodEnv(), config.EnvOutboundAllowCIDRs, "0.0.0.0/0"), config.EnvOutboundAllowCIDRs, "loopback"},
		{"production mapped loopback outbound", with(prodEnv(), config.EnvOutboundAllowCIDRs, "::ffff:127.0.0.1"), config.EnvOutboundAllowCIDRs, "loopback"},
		{"production postgres without sslmode", with(prodEnv(), config.EnvDatabaseURL, "postgres://u@db/authpipe"), config.EnvDatabaseURL, "sslmode missing"},
		{"production postgres sslmode=disable", with(prodEnv(), config.EnvDatabaseURL, "postgresql://u@db/authpipe?sslmode=disable"), config.EnvDatabaseURL, "sslmode=disable"},
		{"production postgres sslmode=allow", with(prodEnv(), config.EnvDatabaseURL, "postgres://u@db/authpipe?sslmode=allow"), config.EnvDatabaseURL, "without TLS"},
		{"production postgres sslmode=prefer", with(prodEnv(), config.EnvDatabaseURL, "postgres://u@db/authpipe?sslmode=prefer"), config.EnvDatabaseURL, "without TLS"},
		{"production vault transit tls=false", with(prodEnv(), config.EnvClientSecretKEKURI, "vault-transit://vault:8200/transit/cs?tls=false"), config.EnvClientSecretKEKURI, "tls=false is refused"},
		{"production previous vault transit tls=false", with(prodEnv(), config.EnvKEKPreviousURIs, "vault-transit://vault:8200/transit/old?tls=false"), config.EnvKEKPreviousURIs, "entry 1: vault-transit:// with tls=false"},
		{"production http control plane", with(prodEnv(), config.EnvControlPlaneURL, "http://cp.example.com", config.EnvControlPlaneToken, cpToken), config.EnvControlPlaneURL, "plain HTTP"},
		{"ops listen addr without port", with(dev, config.EnvOpsListenAddr, "localhost"), config.EnvOpsListenAddr, "is not host:port"},
		{"ops listen addr same as listen addr", with(dev, config.EnvListenAddr, "127.0.0.1:8080", config.EnvOpsListenAddr, "127.0.0.1:8080"), config.EnvOpsListenAddr, "must differ from AUTHPIPE_LISTEN_ADDR"},
		// dev on the network (the container image's 0.0.0.0:8080) needs an explicit opt-in
		{"dev listen on all interfaces", with(dev, config.EnvListenAddr, "0.0.0.0:8080"), config.EnvListenAddr, "not a loopback address, which the dev profile refuses: set AUTHPIPE_PROFILE=production"},
		{"dev listen on empty host", with(dev, config.EnvListenAddr, ":8080"), config.EnvListenAddr, "AUTHPIPE_DEV_ALLOW_NETWORK_LISTEN=true"},
		{"dev listen on v6 any", with(dev, config.EnvListenAddr, "[::]:8080"), config.EnvListenAddr, "not a loopback address"},
		{"dev listen on a pod IP", with(dev, config.EnvListenAddr, "10.1.2.3:8080"), config.EnvListenAddr, "not a loopback address"},
		{"dev listen on a host name", with(dev, config.EnvListenAddr, "proxy.internal:8080"), config.EnvListenAddr, "not a loopback address"},
		// every profile
		{"same KEK twice", with(dev, config.EnvKEKURI, "local://./k.key", config.EnvClientSecretKEKURI, "local://./k.key"), config.EnvClientSecretKEKURI, "must differ from AUTHPIPE_KEK_URI"},
		{"same local KEK file spelled differently", with(dev, config.EnvKEKURI, "local://./data/k.key", config.EnvClientSecretKEKURI, "local://data//k.key"), config.EnvClientSecretKEKURI, "must differ"},
		{"same KEK twice in production", with(prodEnv(), config.EnvClientSecretKEKURI, prodEnv()[config.EnvKEKURI]), config.EnvClientSecretKEKURI, "must differ"},
		{"bad profile", with(dev, config.EnvProfile, "prod"), config.EnvProfile, `"prod" is not dev or production`},
		{"listen addr without port", with(dev, config.EnvListenAddr, "localhost"), config.EnvListenAddr, "is not host:port"},
		{"listen addr bad port", with(dev, config.EnvListenAddr, "localhost:http-alt"), config.EnvListenAddr, "port number"},
		{"listen addr port too big", with(dev, config.EnvListenAddr, ":70000"), config.EnvListenAddr, "port number"},
		{"public URL relative", with(dev, config.EnvPublicURL, "proxy.example.com"), config.EnvPublicURL, "absolute"},
		{"public URL ftp", with(dev, config.EnvPublicURL, "ftp://proxy.example.com"), config.EnvPublicURL, "absolute"},
		{"public URL with path", with(dev, config.EnvPublicURL, "https://proxy.example.com/authpipe"), config.EnvPublicURL, "must not have a path"},
		{"public URL with query", with(dev, config.EnvPublicURL, "https://proxy.example.com/?a=b"), config.EnvPublicURL, "must not have a query"},
		{"public URL with fragment", with(dev, config.EnvPublicURL, "https://proxy.example.com#x"), config.EnvPublicURL, "must not have a fragment"},
		{"public URL with userinfo", with(dev, config.EnvPublicURL, "https://u:pw@proxy.example.com"), config.EnvPublicURL, "userinfo"},
		{"database URL unknown scheme", with(dev, config.EnvDatabaseURL, "mysql://u:pw@db/x"), config.EnvDatabaseURL, "must be sqlite://PATH or postgres://"},
		{"database URL sqlite without path", with(dev, config.EnvDatabaseURL, "sqlite://"), config.EnvDatabaseURL, "needs a file path"},
		{"database URL bad sslmode", with(dev, config.EnvDatabaseURL, "postgres://db/x?sslmode=maybe"), config.EnvDatabaseURL, `sslmode "maybe"`},
		{"database allow plaintext not a bool", with(dev, config.EnvDatabaseAllowPlaintext, "sometimes"), config.EnvDatabaseAllowPlaintext, "not true or false"},
		{"KEK unknown scheme", with(dev, config.EnvKEKURI, "ibmkp://x"), config.EnvKEKURI, "must be a local://, awskms://, vault-transit://, pkcs11:, gcpkms:// or azurekv:// URI"},
		{"KEK gcpkms not a CryptoKey", with(dev, config.EnvKEKURI, "gcpkms://projects/x"), config.EnvKEKURI, "needs a CryptoKey name"},
		{"KEK gcpkms plain gRPC in production", with(prodEnv(), config.EnvKEKURI, "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k?endpoint=http://127.0.0.1:9000"), config.EnvKEKURI, "refused in the production profile"},
		{"KEK azurekv without key", with(dev, config.EnvKEKURI, "azurekv://v.vault.azure.net/keys/"), config.EnvKEKURI, "needs a key"},
		{"KEK azurekv endpoint in production", with(prodEnv(), config.EnvKEKURI, "azurekv://v1.vault.azure.net/keys/k?endpoint=https://127.0.0.1:8443"), config.EnvKEKURI, "refused in the production profile"},
		{"KEK local without path", with(dev, config.EnvKEKURI, "local://"), config.EnvKEKURI, "needs a file path"},
		{"KEK awskms without key", with(dev, config.EnvKEKURI, "awskms://?region=x"), config.EnvKEKURI, "needs a key id"},
		{"KEK vault transit without key", with(dev, config.EnvKEKURI, "vault-transit://vault:8200/transit"), config.EnvKEKURI, "host:port/mount/key"},
		{"KEK vault transit bad tls", with(dev, config.EnvKEKURI, "vault-transit://vault:8200/transit/k?tls=nope"), config.EnvKEKURI, `tls="nope"`},
		{"KEK pkcs11 empty", with(dev, config.EnvKEKURI, "pkcs11:"), config.EnvKEKURI, "RFC 7512"},
		{"previous KEK malformed", with(dev, config.EnvKEKPreviousURIs, "local:///a,nope"), config.EnvKEKPreviousURIs, "entry 2:"},
		{"previous client-secret KEK malformed", with(dev, config.EnvClientSecretKEKPreviousURIs, "awskms://"), config.EnvClientSecretKEKPreviousURIs, "entry 1:"},
		{"bootstrap key without prefix", with(dev, config.EnvBootstrapAPIKey, strings.Repeat("a", 40)), config.EnvBootstrapAPIKey, "must be ap_ followed by at least 32"},
		{"bootstrap key too short", with(dev, config.EnvBootstrapAPIKey, "ap_short"), config.EnvBootstrapAPIKey, "at least 32"},
		{"bootstrap key not url-safe", with(dev, config.EnvBootstrapAPIKey, "ap_"+strings.Repeat("a", 31)+"+"), config.EnvBootstrapAPIKey, "URL-safe"},
		{"malformed CIDR", with(dev, config.EnvOutboundAllowCIDRs, "10.0.0.0/33"), config.EnvOutboundAllowCIDRs, "is not a CIDR prefix"},
		{"CIDR with host bits", with(dev, config.EnvOutboundAllowCIDRs, "10.0.0.1/8"), config.EnvOutboundAllowCIDRs, "did you mean 10.0.0.0/8"},
		{"malformed trusted proxy", with(dev, config.EnvTrustedProxies, "proxy.internal"), config.EnvTrustedProxies, "is not a CIDR prefix"},
		{"malformed cron", with(dev, config.EnvRefreshSchedule, "every 30 seconds"), config.EnvRefreshSchedule, "is not a cron spec"},
		{"malformed cron descriptor", with(dev, config.EnvRefreshSchedule, "@every thirty"), config.EnvRefreshSchedule, "is not a cron spec"},
		{"cron with six fields", with(dev, config.EnvRefreshSchedule, "0 */5 * * * *"), config.EnvRefreshSchedule, "is not a cron spec"},
		{"malformed duration", with(dev, config.EnvRefreshLead, "10 minutes"), config.EnvRefreshLead, "is not a duration"},
		{"days are not a duration", with(dev, config.EnvRetention, "30d"), config.EnvRetention, "is not a duration"},
		{"zero lead", with(dev, config.EnvRefreshLead, "0s"), config.EnvRefreshLead, "not a positive duration"},
		{"zero forced refresh interval", with(dev, config.EnvForcedRefreshInterval, "0s"), config.EnvForcedRefreshInterval, "not a positive duration"},
		{"negative DEK cache TTL", with(dev, config.EnvDEKCacheTTL, "-1m"), config.EnvDEKCacheTTL, "-1m is not a positive duration"},
		{"zero shutdown timeout", with(dev, config.EnvShutdownTimeout, "0"), config.EnvShutdownTimeout, "not a positive"},
		{"zero audit retention", with(dev, config.EnvAuditRetention, "0h"), config.EnvAuditRetention, "not a positive"},
		{"retention above maximum", with(dev, config.EnvRetention, "800h"), config.EnvRetention, "800h exceeds the maximum of 720h"},
		{"zero retention", with(dev, config.EnvRetention, "0s"), config.EnvRetention, "not a positive"},
		{"control plane URL without token", with(dev, config.EnvControlPlaneURL, "https://cp.example.com"), config.EnvControlPlaneToken, "must be set when AUTHPIPE_CONTROL_PLANE_URL"},
		{"control plane token without URL", with(dev, config.EnvControlPlaneToken, cpToken), config.EnvControlPlaneToken, "is set but AUTHPIPE_CONTROL_PLANE_URL is not"},
		{"control plane URL malformed", with(dev, config.EnvControlPlaneURL, "cp.example.com", config.EnvControlPlaneToken, cpToken), config.EnvControlPlaneURL, "absolute"},
		{"TLS cert without key", with(dev, config.EnvTLSCertFile, "/tls/cert.pem"), config.EnvTLSKeyFile, "must be set together with AUTHPIPE_TLS_CERT_FILE"},
		{"TLS key without cert", with(dev, config.EnvTLSKeyFile, "/tls/key.pem"), config.EnvTLSCertFile, "must be set together with AUTHPIPE_TLS_KEY_FILE"},
		{"TLS client CA without TLS", with(dev, config.EnvTLSClientCAFile, "/tls/ca.pem"), config.EnvTLSClientCAFile, "needs AUTHPIPE_TLS_CERT_FILE"},
		{"bad log level", with(dev, config.EnvLogLevel, "verbose"), config.EnvLogLevel, `"verbose" is not debug, info, warn or error`},
		{"bad log format", with(dev, config.EnvLogFormat, "xml"), config.EnvLogFormat, `"xml" is not json or text`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(nil, env(tt.env))
			verr := validationError(t, err)
			require.Contains(t, verr.Vars(), tt.wantVar)
			require.Contains(t, verr.Error(), tt.wantVar+": ")
			require.Contains(t, verr.Error(), tt.wantMsg)
		})
	}
}

// TestAccepted are values a rule must not refuse.
func TestAccepted(t *testing.T) {
	dev := map[string]string{}
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"dev plain http public URL with trailing slash", with(dev, config.EnvPublicURL, "http://localhost:8080/")},
		{"dev sqlite absolute", with(dev, config.EnvDatabaseURL, "sqlite:///var/lib/authpipe/authpipe.db")},
		{"dev postgres without TLS", with(dev, config.EnvDatabaseURL, "postgres://u:pw@localhost/x?sslmode=disable")},
		{"production postgres plaintext allowed", with(prodEnv(), config.EnvDatabaseURL, "postgres://u@db/x", config.EnvDatabaseAllowPlaintext, "true")},
		{"production postgres require", with(prodEnv(), config.EnvDatabaseURL, "postgresql://u@db/x?sslmode=require")},
		{"production postgres verify-ca", with(prodEnv(), config.EnvDatabaseURL, "postgres://u@db/x?sslmode=verify-ca")},
		{"production local previous KEK (migration)", with(prodEnv(), config.EnvKEKPreviousURIs, "local:///old/kek.key")},
		{"production pkcs11 KEK", with(prodEnv(), config.EnvKEKURI, "pkcs11:token=authpipe;object=kek?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/run/pin")},
		{"production gcpkms KEK", with(prodEnv(), config.EnvKEKURI, "gcpkms://projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k")},
		{"production azurekv KEK", with(prodEnv(), config.EnvKEKURI, "azurekv://my-vault.vault.azure.net/keys/authpipe-kek")},
		{"production vault transit tls=true", with(prodEnv(), config.EnvKEKURI, "vault-transit://vault:8200/transit/creds?tls=true")},
		{"dev vault transit tls=false", with(dev, config.EnvKEKURI, "vault-transit://127.0.0.1:8200/transit/creds?tls=false")},
		{"production https control plane", with(prodEnv(), config.EnvControlPlaneURL, "https://cp.authpipe.dev/api", config.EnvControlPlaneToken, cpToken)},
		{"bootstrap key", with(dev, config.EnvBootstrapAPIKey, bootstrapKey)},
		{"five-field cron", with(dev, config.EnvRefreshSchedule, "*/5 * * * *")},
		{"hourly descriptor", with(dev, config.EnvRefreshSchedule, "@hourly")},
		{"TLS with client CA", with(dev, config.EnvTLSCertFile, "c.pem", config.EnvTLSKeyFile, "k.pem", config.EnvTLSClientCAFile, "ca.pem")},
		{"dev listen on all interfaces, opted in", with(dev, config.EnvListenAddr, ":8080", config.EnvDevAllowNetworkListen, "true")},
		{"dev listen on localhost", with(dev, config.EnvListenAddr, "localhost:8080")},
		{"ops listener", with(prodEnv(), config.EnvListenAddr, "0.0.0.0:8080", config.EnvOpsListenAddr, "0.0.0.0:9090")},
		{"production listen on all interfaces", with(prodEnv(), config.EnvListenAddr, "0.0.0.0:8080")},
		{"listen on v6", with(dev, config.EnvListenAddr, "[::1]:8080")},
		{"upper-case levels and profile", with(dev, config.EnvLogLevel, "DEBUG", config.EnvLogFormat, "Text", config.EnvProfile, "Dev")},
		{"retention at maximum", with(dev, config.EnvRetention, "720h")},
		{"trusted proxies", with(dev, config.EnvTrustedProxies, "10.0.0.0/8,fd00::/8")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(nil, env(tt.env))
			require.NoError(t, err)
			require.NoError(t, cfg.Validate())
		})
	}
}

func TestPublicURLTrailingSlashTrimmed(t *testing.T) {
	cfg, err := config.Load(nil, env(map[string]string{config.EnvPublicURL: "https://proxy.example.com/"}))
	require.NoError(t, err)
	require.Equal(t, "https://proxy.example.com", cfg.PublicURL)
	require.Equal(t, "https://proxy.example.com/v1/oauth/callback", cfg.CallbackURL())
}

func TestErrorIsOneLineNamingEveryVariable(t *testing.T) {
	_, err := config.Load(nil, env(map[string]string{
		config.EnvRetention:   "800h",
		config.EnvProfile:     "prod",
		config.EnvRefreshLead: "soon",
		config.EnvLogLevel:    "loud\nsecond line",
	}))
	verr := validationError(t, err)
	require.Equal(t,
		`AUTHPIPE_PROFILE: "prod" is not dev or production; `+
			`AUTHPIPE_REFRESH_LEAD: "soon" is not a duration (use units h, m, s: e.g. 720h, 10m, 30s); `+
			`AUTHPIPE_RETENTION: 800h exceeds the maximum of 720h; `+
			`AUTHPIPE_LOG_LEVEL: "loud\nsecond line" is not debug, info, warn or error`,
		verr.Error())
	require.Equal(t, []string{config.EnvProfile, config.EnvRefreshLead, config.EnvRetention, config.EnvLogLevel}, verr.Vars())
}

func TestParseFailureIsNotReportedTwice(t *testing.T) {
	_, err := config.Load(nil, env(map[string]string{config.EnvRetention: "forever"}))
	verr := validationError(t, err)
	require.Len(t, verr.Issues, 1, verr.Error())
}

func TestSecretsNeverShown(t *testing.T) {
	pin := "pin-1234-secret"
	e := with(prodEnv(),
		config.EnvBootstrapAPIKey, bootstrapKey,
		config.EnvControlPlaneURL, "https://cp.example.com",
		config.EnvControlPlaneToken, cpToken,
		config.EnvKEKPreviousURIs, "pkcs11:token=old;object=kek;pin-value="+pin+"?module-path=/lib/p11.so",
	)
	secrets := []string{dbPassword, bootstrapKey, cpToken, pin}

	cfg, err := config.Load(nil, env(e))
	require.NoError(t, err)
	require.Equal(t, bootstrapKey, cfg.BootstrapAPIKey.Reveal())
	require.Equal(t, cpToken, cfg.ControlPlaneToken.Reveal())

	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("starting", "config", cfg)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("starting", "config", cfg)
	js, err := cfg.MarshalJSON()
	require.NoError(t, err)
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg),
		"%s": fmt.Sprintf("%s", cfg), "%d": fmt.Sprintf("%d", cfg), "%x": fmt.Sprintf("%x", cfg),
		"%+v of pointer": fmt.Sprintf("%+v", &cfg), "%+v nested": fmt.Sprintf("%+v", struct{ C config.Config }{cfg}),
		"String": cfg.String(), "slog": logged.String(), "json": string(js),
		"redacted database URL": cfg.RedactedDatabaseURL(),
	}
	for name, out := range outputs {
		for _, s := range secrets {
			require.NotContains(t, out, s, name)
		}
	}
	require.Contains(t, outputs["%+v"], "bootstrap_api_key=[REDACTED]")
	require.Contains(t, outputs["%+v"], "database_url=postgres://authpipe:xxxxx@db.internal:5432/authpipe?sslmode=verify-full")
	require.Contains(t, logged.String(), `"listen_addr":"127.0.0.1:8080"`)

	// Malformed secrets and unsafe URLs must not be echoed in the error either.
	bad := with(e,
		config.EnvBootstrapAPIKey, "ap_"+cpToken, // too short: refused
		config.EnvDatabaseURL, "postgres://authpipe:"+dbPassword+"@db.internal:bad-port/x",
		config.EnvClientSecretKEKURI, "gcpkms://"+pin,
		config.EnvControlPlaneURL, "http://user:"+cpToken+"@cp.example.com",
	)
	_, err = config.Load(nil, env(bad))
	verr := validationError(t, err)
	require.Subset(t, verr.Vars(), []string{config.EnvDatabaseURL, config.EnvBootstrapAPIKey, config.EnvClientSecretKEKURI, config.EnvControlPlaneURL})
	for _, s := range secrets {
		require.NotContains(t, verr.Error(), s)
	}
	for _, msg := range []string{"sslmode=disable", "mysql://u:" + dbPassword + "@h/x", dbPassword} {
		_, err = config.Load(nil, env(with(prodEnv(), config.EnvDatabaseURL, "postgres://u:"+dbPassword+"@h/x?"+msg)))
		if err != nil {
			require.NotContains(t, err.Error(), dbPassword)
		}
	}
	// sqlite / wrong scheme with a password-looking value
	_, err = config.Load(nil, env(with(prodEnv(), config.EnvDatabaseURL, "mysql://u:"+dbPassword+"@h/x")))
	require.NotContains(t, validationError(t, err).Error(), dbPassword)
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "authpipe.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
AUTHPIPE_LISTEN_ADDR: 127.0.0.1:1111
public_url: https://file.example.com
refresh_lead: 3m
retention: 48h
log_level: warn
`), 0o600))

	e := map[string]string{
		config.EnvPublicURL:   "https://env.example.com",
		config.EnvRefreshLead: "4m",
		config.EnvRetention:   "", // empty: not given, the file's value stands
	}
	args := []string{"--config", file, "--refresh-lead", "5m"}

	cfg, err := config.Load(args, env(e))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:1111", cfg.ListenAddr, "file over default")
	require.Equal(t, "https://env.example.com", cfg.PublicURL, "env over file")
	require.Equal(t, 5*time.Minute, cfg.RefreshLead, "flag over env and file")
	require.Equal(t, 48*time.Hour, cfg.Retention, "an empty env value does not hide the file")
	require.Equal(t, slog.LevelWarn, cfg.LogLevel)
	require.Equal(t, 15*time.Second, cfg.ShutdownTimeout, "default when nobody sets it")

	// Flags alone, single-dash and --name=value forms.
	cfg, err = config.Load([]string{"-listen-addr=0.0.0.0:9000", "--dev-allow-network-listen", "--database-allow-plaintext", "--kek-previous-uris", "local:///a, local:///b"}, env(nil))
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:9000", cfg.ListenAddr)
	require.True(t, cfg.DatabaseAllowPlaintext)
	require.Equal(t, []string{"local:///a", "local:///b"}, cfg.KEKPreviousURIs)

	// A flag set to empty for a setting with EmptyIsValue wins over the env.
	cfg, err = config.Load([]string{"--outbound-allow-cidrs="}, env(map[string]string{config.EnvOutboundAllowCIDRs: "10.0.0.0/8"}))
	require.NoError(t, err)
	require.Empty(t, cfg.OutboundAllowCIDRs)
	require.True(t, cfg.OutboundAllowCIDRsSet)

	// A bool flag set to false beats env true.
	cfg, err = config.Load([]string{"--database-allow-plaintext=false"}, env(map[string]string{config.EnvDatabaseAllowPlaintext: "true"}))
	require.NoError(t, err)
	require.False(t, cfg.DatabaseAllowPlaintext)
}

func TestEveryFlagAndYAMLKeyReachesItsField(t *testing.T) {
	// A value for every setting, so that each of flag, env and long/short YAML key is
	// shown to set exactly what the table says.
	values := map[string]string{
		config.EnvProfile:                     "dev",
		config.EnvListenAddr:                  "127.0.0.1:9999",
		config.EnvDevAllowNetworkListen:       "true",
		config.EnvOpsListenAddr:               "127.0.0.1:9090",
		config.EnvPublicURL:                   "https://p.example.com",
		config.EnvDatabaseURL:                 "postgres://db/x?sslmode=verify-full",
		config.EnvDatabaseAllowPlaintext:      "true",
		config.EnvDatabaseListenURL:           "postgres://db-direct/x?sslmode=verify-full",
		config.EnvKEKURI:                      "awskms://alias/a",
		config.EnvKEKPreviousURIs:             "awskms://alias/old",
		config.EnvClientSecretKEKURI:          "awskms://alias/b",
		config.EnvClientSecretKEKPreviousURIs: "awskms://alias/old-b",
		config.EnvDEKCacheTTL:                 "1m",
		config.EnvBootstrapAPIKey:             bootstrapKey,
		config.EnvOutboundAllowCIDRs:          "10.0.0.0/8",
		config.EnvTrustedProxies:              "192.168.0.0/16",
		config.EnvRateLimitPerKey:             "50/s,burst=7",
		config.EnvRateLimitPerIP:              "600/m",
		config.EnvOutboundCAFile:              "corp-ca.pem",
		config.EnvControlPlanePins:            "sha256/" + strings.Repeat("A", 43) + "=,sha256/" + strings.Repeat("B", 43) + "=",
		config.EnvRefreshSchedule:             "@every 1m",
		config.EnvRefreshLead:                 "2m",
		config.EnvForcedRefreshInterval:       "5s",
		config.EnvAnomalyWindow:               "2m",
		config.EnvAnomalyKeyConnections:       "77",
		config.EnvAnomalyRefusedReads:         "88",
		config.EnvAnomalyClientWarmup:         "48h",
		config.EnvAnomalyClientsPerKey:        "16",
		config.EnvAnomalyProviderFailures:     "99",
		config.EnvAnomalyProviderNeedsReauth:  "44",
		config.EnvAnomalyRefreshStorm:         "55",
		config.EnvRefreshTokenExpiringLead:    "72h",
		config.EnvRetention:                   "24h",
		config.EnvAuditRetention:              "100h",
		config.EnvAuditCheckpointFile:         "/var/log/authpipe/checkpoints.jsonl",
		config.EnvControlPlaneURL:             "https://cp.example.com",
		config.EnvControlPlaneToken:           cpToken,
		config.EnvControlPlanePublicKey:       "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", // RFC 8032 test 1
		config.EnvTLSCertFile:                 "c.pem",
		config.EnvTLSKeyFile:                  "k.pem",
		config.EnvTLSClientCAFile:             "ca.pem",
		config.EnvShutdownTimeout:             "3s",
		config.EnvShutdownDelay:               "0s",
		config.EnvLogLevel:                    "debug",
		config.EnvLogFormat:                   "text",
		config.EnvAccessLog:                   "all",
	}
	require.Len(t, values, len(config.Settings()), "a value for every setting")

	want, err := config.Load(nil, env(values))
	require.NoError(t, err)
	require.Equal(t, "https://p.example.com", want.PublicURL)
	require.Equal(t, 3*time.Second, want.ShutdownTimeout)
	require.Equal(t, "ca.pem", want.TLSClientCAFile)
	require.Equal(t, "corp-ca.pem", want.OutboundCAFile)
	require.Equal(t, "postgres://db-direct/x?sslmode=verify-full", want.DatabaseListenURL)
	require.Len(t, want.ControlPlanePins, 2)
	def, err := config.Load(nil, env(nil))
	require.NoError(t, err)

	var args []string
	var long, short strings.Builder
	for _, s := range config.Settings() {
		v := values[s.Name]
		args = append(args, "--"+s.Flag+"="+v)
		fmt.Fprintf(&long, "%s: %q\n", s.Name, v)
		fmt.Fprintf(&short, "%s: %q\n", s.Key, v)

		// One setting at a time: it must move the config away from the defaults (a
		// value a rule refuses still lands in the returned Config).
		single := v
		if s.Name == config.EnvProfile {
			single = "production"
		}
		one, _ := config.Load([]string{"--" + s.Flag + "=" + single}, env(nil))
		require.NotEqual(t, def.String(), one.String(), "--%s changed nothing", s.Flag)
	}
	fromFlags, err := config.Load(args, env(nil))
	require.NoError(t, err)
	require.Equal(t, want.String(), fromFlags.String())

	dir := t.TempDir()
	for name, body := range map[string]string{"long.yaml": long.String(), "short.yaml": short.String()} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
		fromFile, err := config.Load([]string{"--config", path}, env(nil))
		require.NoError(t, err, name)
		require.Equal(t, want.String(), fromFile.String(), name)
		require.Equal(t, bootstrapKey, fromFile.BootstrapAPIKey.Reveal())
	}
}

func TestConfigFile(t *testing.T) {
	write := func(t *testing.T, body string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "c.yaml")
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
		return path
	}
	t.Run("lists as sequences and numbers as scalars", func(t *testing.T) {
		cfg, err := config.Load([]string{"--config", write(t, `
kek_previous_uris: ["local:///a", "local:///b"]
outbound_allow_cidrs: []
database_allow_plaintext: true
`)}, env(nil))
		require.NoError(t, err)
		require.Equal(t, []string{"local:///a", "local:///b"}, cfg.KEKPreviousURIs)
		require.Empty(t, cfg.OutboundAllowCIDRs)
		require.True(t, cfg.OutboundAllowCIDRsSet, "an empty list is set but empty")
		require.True(t, cfg.DatabaseAllowPlaintext)
	})
	t.Run("empty file", func(t *testing.T) {
		_, err := config.Load([]string{"--config", write(t, "")}, env(nil))
		require.NoError(t, err)
	})
	tests := []struct {
		name, body, wantVar, wantMsg string
	}{
		{"unknown key", "listen_addr: 127.0.0.1:1\nlisten_adr: x\nAUTHPIPE_NOPE: y\n", "--config", `unknown key "listen_adr"`},
		{"second unknown key is reported too", "listen_adr: x\nAUTHPIPE_NOPE: y\n", "--config", `unknown key "AUTHPIPE_NOPE"`},
		{"long and short form of one key", "listen_addr: 127.0.0.1:1\nAUTHPIPE_LISTEN_ADDR: 127.0.0.1:2\n", config.EnvListenAddr, "given twice"},
		{"list for a scalar setting", "listen_addr: [a, b]\n", config.EnvListenAddr, "a list is only allowed"},
		{"mapping value", "retention: {a: 1}\n", config.EnvRetention, "want a string"},
		{"not a mapping", "- a\n- b\n", "--config", "want a mapping"},
		{"not YAML", "a: [\n", "--config", "yaml"},
		{"bad value in file", "retention: 800h\n", config.EnvRetention, "exceeds the maximum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load([]string{"--config", write(t, tt.body)}, env(nil))
			verr := validationError(t, err)
			require.Contains(t, verr.Vars(), tt.wantVar)
			require.Contains(t, verr.Error(), tt.wantMsg)
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := config.Load([]string{"--config", filepath.Join(t.TempDir(), "nope.yaml")}, env(nil))
		verr := validationError(t, err)
		require.Equal(t, []string{"--config"}, verr.Vars())
	})
}

func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--listen"}, "flag provided but not defined: -listen"},
		{"missing value", []string{"--listen-addr"}, "flag needs an argument"},
		{"positional argument not echoed", []string{"--database-allow-plaintext", bootstrapKey}, "1 unexpected argument(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(tt.args, env(nil))
			verr := validationError(t, err)
			require.Equal(t, []string{"command line"}, verr.Vars())
			require.Contains(t, verr.Error(), tt.want)
			require.NotContains(t, verr.Error(), bootstrapKey)
		})
	}
	t.Run("help", func(t *testing.T) {
		_, err := config.Load([]string{"-h"}, env(nil))
		require.ErrorIs(t, err, flag.ErrHelp)
		var verr *config.ValidationError
		require.False(t, errors.As(err, &verr))
		usage := config.Usage()
		for _, s := range config.Settings() {
			require.Contains(t, usage, "--"+s.Flag)
		}
	})
}

func TestValidateIsPureAndWorksOnHandBuiltConfig(t *testing.T) {
	cfg, err := config.Load(nil, env(nil))
	require.NoError(t, err)
	before := cfg.String()

	cfg.Profile = config.ProfileProduction
	cfg.Retention = 0
	cfg.ListenAddr = "nope"
	snapshot := cfg.String()
	verr := validationError(t, cfg.Validate())
	require.Equal(t, snapshot, cfg.String(), "Validate changed the config")
	require.Equal(t, []string{config.EnvListenAddr, config.EnvPublicURL, config.EnvDatabaseURL, config.EnvKEKURI,
		config.EnvClientSecretKEKURI, config.EnvOutboundAllowCIDRs, config.EnvRetention}, verr.Vars())
	require.NotEqual(t, before, snapshot)

	require.Error(t, config.Config{}.Validate(), "the zero Config is not valid")
}

func TestSettingsTable(t *testing.T) {
	settings := config.Settings()
	require.Equal(t, config.EnvProfile, settings[0].Name, "the profile must come first: defaults depend on it")
	seen := map[string]bool{}
	seenFlag := map[string]bool{}
	seenKey := map[string]bool{}
	for _, s := range settings {
		t.Run(s.Name, func(t *testing.T) {
			require.True(t, strings.HasPrefix(s.Name, "AUTHPIPE_"))
			short := strings.ToLower(strings.TrimPrefix(s.Name, "AUTHPIPE_"))
			require.Equal(t, short, s.Key)
			require.Equal(t, strings.ReplaceAll(short, "_", "-"), s.Flag)
			require.NotEmpty(t, s.Description)
			require.False(t, seen[s.Name] || seenFlag[s.Flag] || seenKey[s.Key], "duplicate %s", s.Name)
			seen[s.Name], seenFlag[s.Flag], seenKey[s.Key] = true, true, true
			if s.Secret {
				require.Empty(t, s.Default, "a secret has no default")
			}
		})
	}
	// The API.md contract names.
	for _, name := range []string{"AUTHPIPE_PROFILE", "AUTHPIPE_LISTEN_ADDR", "AUTHPIPE_PUBLIC_URL", "AUTHPIPE_DATABASE_URL",
		"AUTHPIPE_KEK_URI", "AUTHPIPE_KEK_PREVIOUS_URIS", "AUTHPIPE_CLIENT_SECRET_KEK_URI", "AUTHPIPE_BOOTSTRAP_API_KEY",
		"AUTHPIPE_OUTBOUND_ALLOW_CIDRS", "AUTHPIPE_REFRESH_SCHEDULE", "AUTHPIPE_REFRESH_LEAD", "AUTHPIPE_RETENTION",
		"AUTHPIPE_CONTROL_PLANE_URL", "AUTHPIPE_CONTROL_PLANE_TOKEN", "AUTHPIPE_TLS_CERT_FILE", "AUTHPIPE_TLS_KEY_FILE",
		"AUTHPIPE_LOG_LEVEL", "AUTHPIPE_LOG_FORMAT"} {
		require.True(t, seen[name], name)
	}
}

func TestControlPlanePins(t *testing.T) {
	good := "sha256/" + strings.Repeat("A", 43) + "="
	tests := []struct {
		name, raw string
		ok        bool
	}{
		{"one", good, true},
		{"two for rotation", good + "," + good, true},
		{"no prefix", strings.Repeat("A", 43) + "=", false},
		{"sha1", "sha1/" + strings.Repeat("A", 27) + "=", false},
		{"short", "sha256/AAAA", false},
		{"not base64", "sha256/" + strings.Repeat("!", 44), false},
		{"second entry bad", good + ",sha256/x", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load(nil, env(map[string]string{config.EnvControlPlanePins: tc.raw}))
			if tc.ok {
				require.NoError(t, err)
				require.NotEmpty(t, cfg.ControlPlanePins)
				return
			}
			var ve *config.ValidationError
			require.ErrorAs(t, err, &ve)
			require.Equal(t, []string{config.EnvControlPlanePins}, ve.Vars())
		})
	}
}

// AUTHPIPE_DATABASE_LISTEN_URL is a PostgreSQL URL for a PostgreSQL database, under the
// same TLS rules, and its password is never shown.
func TestDatabaseListenURL(t *testing.T) {
	base := map[string]string{config.EnvDatabaseURL: "postgres://u@pgbouncer:6432/authpipe?sslmode=disable&default_query_exec_mode=exec"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cfg, err := config.Load(nil, env(with(config.EnvDatabaseListenURL, "postgres://u:hunter2SENTINEL@db:5432/authpipe?sslmode=disable")))
	require.NoError(t, err)
	require.Equal(t, "postgres://u:hunter2SENTINEL@db:5432/authpipe?sslmode=disable", cfg.DatabaseListenURL)
	require.NotContains(t, fmt.Sprint(cfg), "hunter2SENTINEL")
	j, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NotContains(t, string(j), "hunter2SENTINEL")

	for name, vars := range map[string]map[string]string{
		"not postgres":      with(config.EnvDatabaseListenURL, "mysql://u:hunter2SENTINEL@db/x"),
		"for SQLite":        {config.EnvDatabaseURL: "sqlite://./x.db", config.EnvDatabaseListenURL: "postgres://db/x"},
		"plaintext in prod": with(config.EnvProfile, "production", config.EnvDatabaseURL, "postgres://pgb/x?sslmode=verify-full", config.EnvDatabaseListenURL, "postgres://u:hunter2SENTINEL@db/x"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Load(nil, env(vars))
			require.Error(t, err)
			require.Contains(t, err.Error(), config.EnvDatabaseListenURL)
			require.NotContains(t, err.Error(), "hunter2SENTINEL")
		})
	}
}

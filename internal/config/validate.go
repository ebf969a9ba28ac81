package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Issue is one problem with one setting. Msg never contains a secret.
type Issue struct {
	Var string // the environment variable, e.g. AUTHPIPE_RETENTION
	Msg string
}

// ValidationError is every problem found in a configuration. The caller prints it
// and exits with status 2.
type ValidationError struct {
	Issues []Issue
}

// Error is one line: "VAR: problem; VAR: problem".
func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Issues))
	for _, is := range e.Issues {
		parts = append(parts, oneLine(is.Var+": "+is.Msg))
	}
	return strings.Join(parts, "; ")
}

// Vars lists the variables that have a problem, in order, without repeats.
func (e *ValidationError) Vars() []string {
	var out []string
	for _, is := range e.Issues {
		if !slices.Contains(out, is.Var) {
			out = append(out, is.Var)
		}
	}
	return out
}

func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// newValidationError orders issues as the settings table does (file and command-line
// problems first), keeping the order of several issues of one variable.
func newValidationError(issues []Issue) *ValidationError {
	rank := map[string]int{}
	for i, s := range Settings() {
		rank[s.Name] = i + 1
	}
	out := slices.Clone(issues)
	slices.SortStableFunc(out, func(a, b Issue) int { return rank[a.Var] - rank[b.Var] })
	return &ValidationError{Issues: out}
}

// Validate checks c against every rule of its profile. It is pure: it reads no file
// and changes nothing. It returns nil or a *ValidationError.
func (c Config) Validate() error {
	if issues := c.check(); len(issues) > 0 {
		return newValidationError(issues)
	}
	return nil
}

// check applies every rule and returns the problems found.
func (c Config) check() []Issue {
	var issues []Issue
	add := func(v, format string, args ...any) {
		issues = append(issues, Issue{Var: v, Msg: fmt.Sprintf(format, args...)})
	}
	addMsg := func(v, msg string) {
		if msg != "" {
			issues = append(issues, Issue{Var: v, Msg: msg})
		}
	}
	prod := c.Production()

	switch c.Profile {
	case ProfileDev, ProfileProduction:
	default:
		add(EnvProfile, "%q is not dev or production", string(c.Profile))
	}

	if msg := checkListenAddr(c.ListenAddr); msg != "" {
		add(EnvListenAddr, "%s", msg)
	} else if !prod && !c.DevAllowNetworkListen && !loopbackListen(c.ListenAddr) {
		add(EnvListenAddr, "%q is not a loopback address, which the dev profile refuses: set %s=production (with its database, KEK and public URL settings), or %s=true to run dev on the network anyway",
			c.ListenAddr, EnvProfile, EnvDevAllowNetworkListen)
	}
	if c.OpsListenAddr != "" {
		if msg := checkListenAddr(c.OpsListenAddr); msg != "" {
			add(EnvOpsListenAddr, "%s", msg)
		} else if _, port, _ := net.SplitHostPort(c.OpsListenAddr); port != "0" && c.OpsListenAddr == c.ListenAddr {
			add(EnvOpsListenAddr, "must differ from %s", EnvListenAddr)
		}
	}
	addMsg(EnvPublicURL, checkPublicURL(c.PublicURL, prod))
	addMsg(EnvDatabaseURL, checkDatabaseURL(c.DatabaseURL, prod, c.DatabaseAllowPlaintext))
	if c.DatabaseListenURL != "" {
		if scheme, _, _ := strings.Cut(strings.ToLower(c.DatabaseListenURL), "://"); scheme != "postgres" && scheme != "postgresql" {
			add(EnvDatabaseListenURL, "must be a postgres:// URL (the value is not shown)")
		} else if scheme, _, _ := strings.Cut(strings.ToLower(c.DatabaseURL), "://"); scheme != "postgres" && scheme != "postgresql" {
			add(EnvDatabaseListenURL, "is for a PostgreSQL %s only", EnvDatabaseURL)
		} else {
			addMsg(EnvDatabaseListenURL, checkDatabaseURL(c.DatabaseListenURL, prod, c.DatabaseAllowPlaintext))
		}
	}

	addMsg(EnvKEKURI, checkKEKURI(c.KEKURI, prod, false))
	for i, u := range c.KEKPreviousURIs {
		if msg := checkKEKURI(u, prod, true); msg != "" {
			add(EnvKEKPreviousURIs, "entry %d: %s", i+1, msg)
		}
	}
	addMsg(EnvClientSecretKEKURI, checkKEKURI(c.ClientSecretKEKURI, prod, false))
	if c.KEKURI != "" && sameKEK(c.KEKURI, c.ClientSecretKEKURI) {
		add(EnvClientSecretKEKURI, "must differ from %s: one key must not open both the credential and the client-secret store", EnvKEKURI)
	}
	for i, u := range c.ClientSecretKEKPreviousURIs {
		if msg := checkKEKURI(u, prod, true); msg != "" {
			add(EnvClientSecretKEKPreviousURIs, "entry %d: %s", i+1, msg)
		}
	}
	addMsg(EnvDEKCacheTTL, positive(c.DEKCacheTTL))

	if !c.BootstrapAPIKey.IsZero() && !validAPIKey(c.BootstrapAPIKey.Reveal()) {
		add(EnvBootstrapAPIKey, "must be ap_ followed by at least 32 URL-safe characters (A-Z a-z 0-9 - _); the value is not shown")
	}

	for _, p := range c.OutboundAllowCIDRs {
		switch {
		case !p.IsValid():
			add(EnvOutboundAllowCIDRs, "contains an invalid prefix")
		case prod && containsLoopback(p):
			add(EnvOutboundAllowCIDRs, "%s contains loopback addresses, which the production profile refuses", p)
		}
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			add(EnvTrustedProxies, "contains an invalid prefix")
		}
	}

	addMsg(EnvRefreshSchedule, checkCron(c.RefreshSchedule))
	addMsg(EnvRefreshLead, positive(c.RefreshLead))
	addMsg(EnvForcedRefreshInterval, positive(c.ForcedRefreshInterval))
	addMsg(EnvAnomalyWindow, positive(c.AnomalyWindow))
	addMsg(EnvAnomalyClientWarmup, positive(c.AnomalyClientWarmup))
	addMsg(EnvRefreshTokenExpiringLead, positive(c.RefreshTokenExpiringLead))
	if msg := positive(c.Retention); msg != "" {
		add(EnvRetention, "%s", msg)
	} else if c.Retention > MaxRetention {
		add(EnvRetention, "%s exceeds the maximum of %s", formatDuration(c.Retention), formatDuration(MaxRetention))
	}
	addMsg(EnvAuditRetention, positive(c.AuditRetention))

	if c.ControlPlaneURL != "" {
		addMsg(EnvControlPlaneURL, checkControlPlaneURL(c.ControlPlaneURL, prod))
		if c.ControlPlaneToken.IsZero() {
			add(EnvControlPlaneToken, "must be set when %s is set", EnvControlPlaneURL)
		}
	} else if !c.ControlPlaneToken.IsZero() {
		add(EnvControlPlaneToken, "is set but %s is not", EnvControlPlaneURL)
	}

	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		add(EnvTLSKeyFile, "must be set together with %s", EnvTLSCertFile)
	case c.TLSCertFile == "" && c.TLSKeyFile != "":
		add(EnvTLSCertFile, "must be set together with %s", EnvTLSKeyFile)
	}
	if c.TLSClientCAFile != "" && !c.TLSEnabled() {
		add(EnvTLSClientCAFile, "needs %s and %s: client certificates only exist over TLS", EnvTLSCertFile, EnvTLSKeyFile)
	}

	addMsg(EnvShutdownTimeout, positive(c.ShutdownTimeout))
	if c.ShutdownDelay < 0 {
		addMsg(EnvShutdownDelay, "must not be negative")
	}
	switch c.LogFormat {
	case LogFormatJSON, LogFormatText:
	default:
		add(EnvLogFormat, "%q is not json or text", string(c.LogFormat))
	}
	return issues
}

func positive(d time.Duration) string {
	if d <= 0 {
		return fmt.Sprintf("%s is not a positive duration", formatDuration(d))
	}
	return ""
}

func checkListenAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%q is not host:port (e.g. 127.0.0.1:8080, :8080)", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("%q does not end in a port number 0-65535", addr)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Sprintf("%q does not have a valid host", addr)
	}
	return ""
}

// loopbackListen reports whether a valid listen address (host:port) binds loopback only:
// "localhost" or a loopback IP. An empty host, 0.0.0.0 and :: listen on every interface.
func loopbackListen(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// parseHTTPURL parses an absolute http(s) URL with a host and no userinfo or fragment.
// Its messages show the URL only once it parsed, and then with any password redacted.
func parseHTTPURL(raw string) (*url.URL, string) {
	if raw == "" {
		return nil, "must be set"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, "is not an absolute http:// or https:// URL with a host"
	}
	if u.User != nil {
		return nil, fmt.Sprintf("%q must not contain userinfo", u.Redacted())
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, fmt.Sprintf("%q must not have a fragment", u.Redacted())
	}
	return u, ""
}

func checkPublicURL(raw string, prod bool) string {
	u, msg := parseHTTPURL(raw)
	if msg != "" {
		return msg
	}
	switch {
	case u.Path != "" && u.Path != "/":
		return fmt.Sprintf("%q must not have a path", raw)
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Sprintf("%q must not have a query", raw)
	case prod && u.Scheme != "https":
		return fmt.Sprintf("%q is plain HTTP, which the production profile refuses; use https://", raw)
	}
	return ""
}

func checkControlPlaneURL(raw string, prod bool) string {
	u, msg := parseHTTPURL(raw)
	if msg != "" {
		return msg
	}
	if prod && u.Scheme != "https" {
		return fmt.Sprintf("%q is plain HTTP, which the production profile refuses: the token would travel in clear", u.Redacted())
	}
	return ""
}

func checkDatabaseURL(raw string, prod, allowPlaintext bool) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme = ""
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		path, _, _ := strings.Cut(rest, "?")
		if path == "" {
			return "sqlite:// needs a file path, e.g. sqlite:///var/lib/authpipe/authpipe.db"
		}
		if prod {
			return "SQLite is refused in the production profile; use postgres://"
		}
	case "postgres", "postgresql":
		u, err := url.Parse(raw)
		if err != nil { // err would echo the URL, password included
			return "is not a valid postgres:// URL (the value is not shown)"
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return "has a malformed query string (the value is not shown)"
		}
		mode := q.Get("sslmode")
		switch {
		case mode == "", mode == "disable", mode == "allow", mode == "prefer": // libpq: may end up without TLS
			if prod && !allowPlaintext {
				shown := "sslmode missing"
				if mode != "" {
					shown = "sslmode=" + mode
				}
				return fmt.Sprintf("PostgreSQL without TLS (%s) is refused in the production profile; use sslmode=verify-full (or set %s=true)", shown, EnvDatabaseAllowPlaintext)
			}
		case mode == "require", mode == "verify-ca", mode == "verify-full":
		default:
			return fmt.Sprintf("sslmode %q is not disable, allow, prefer, require, verify-ca or verify-full", mode)
		}
	default:
		return "must be sqlite://PATH or postgres://… (the value is not shown)"
	}
	return ""
}

// checkKEKURI checks the shape of a KEK URI (the backend checks the rest when it opens
// it) and the profile's rules. allowLocal lets a previous KEK be local in production.
// Messages name the scheme, never the URI: a pkcs11 URI may carry a pin-value.
func checkKEKURI(uri string, prod, allowLocal bool) string {
	if uri == "" {
		return "must be set"
	}
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok {
		scheme = ""
	}
	switch scheme {
	case "local":
		path, ok := strings.CutPrefix(rest, "//")
		if !ok || path == "" || strings.ContainsAny(path, "?#") {
			return "local:// needs a file path and no query, e.g. local:///etc/authpipe/kek.key"
		}
		if prod && !allowLocal {
			return "a local KEK in a plain file is refused in the production profile; use awskms://, vault-transit://, pkcs11:, gcpkms:// or azurekv://"
		}
	case "awskms":
		body, ok := strings.CutPrefix(rest, "//")
		key, query, _ := strings.Cut(body, "?")
		if !ok || key == "" {
			return "awskms:// needs a key id or ARN, e.g. awskms://alias/authpipe?region=eu-west-1"
		}
		if _, err := url.ParseQuery(query); err != nil {
			return "awskms:// has a malformed query string"
		}
	case "vault-transit":
		u, err := url.Parse(uri)
		if err != nil || u.Host == "" {
			return "vault-transit:// needs host:port/mount/key"
		}
		if segs := strings.Split(strings.Trim(u.Path, "/"), "/"); len(segs) < 2 || slices.Contains(segs, "") {
			return "vault-transit:// needs host:port/mount/key"
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return "vault-transit:// has a malformed query string"
		}
		if v := q.Get("tls"); v != "" {
			useTLS, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Sprintf("vault-transit:// tls=%q is not true or false", v)
			}
			if !useTLS && prod {
				return "vault-transit:// with tls=false is refused in the production profile: wrapped and unwrapped keys would cross the network in clear"
			}
		}
	case "pkcs11":
		if rest == "" {
			return "pkcs11: needs a URI (RFC 7512), e.g. pkcs11:token=authpipe;object=kek?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/run/secrets/pin"
		}
	case "gcpkms":
		body, ok := strings.CutPrefix(rest, "//")
		name, query, _ := strings.Cut(body, "?")
		if segs := strings.Split(name, "/"); !ok || len(segs) != 8 || segs[0] != "projects" || segs[2] != "locations" || segs[4] != "keyRings" || segs[6] != "cryptoKeys" {
			return "gcpkms:// needs a CryptoKey name, e.g. gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K"
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			return "gcpkms:// has a malformed query string"
		}
		if strings.HasPrefix(q.Get("endpoint"), "http:") && prod {
			return "gcpkms:// with an http endpoint (plain gRPC to a local test server) is refused in the production profile"
		}
	case "azurekv":
		u, err := url.Parse(uri)
		if err != nil || u.Host == "" || !strings.HasPrefix(u.Path, "/keys/") || len(u.Path) == len("/keys/") {
			return "azurekv:// needs a key, e.g. azurekv://my-vault.vault.azure.net/keys/authpipe-kek"
		}
		if u.Query().Has("endpoint") && prod {
			return "azurekv:// with an endpoint override (a local test server) is refused in the production profile"
		}
	default:
		return "must be a local://, awskms://, vault-transit://, pkcs11:, gcpkms:// or azurekv:// URI (the value is not shown)"
	}
	return ""
}

// sameKEK compares two KEK URIs, treating local:// paths that clean to the same file
// as equal.
func sameKEK(a, b string) bool {
	norm := func(u string) string {
		if p, ok := strings.CutPrefix(u, "local://"); ok {
			return "local://" + cleanPath(p)
		}
		return u
	}
	return norm(a) == norm(b)
}

func validAPIKey(k string) bool {
	rest, ok := strings.CutPrefix(k, "ap_")
	if !ok || len(rest) < 32 {
		return false
	}
	for _, r := range rest {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// containsLoopback reports whether p overlaps 127.0.0.0/8, ::1/128 or their
// IPv4-mapped IPv6 form.
func containsLoopback(p netip.Prefix) bool {
	for _, lb := range []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("::ffff:127.0.0.0/104"),
	} {
		if p.Overlaps(lb) {
			return true
		}
	}
	return false
}

func checkCron(spec string) (msg string) {
	if spec == "" {
		return "must be set"
	}
	defer func() { // robfig/cron's parser has panicked on odd input before
		if recover() != nil {
			msg = fmt.Sprintf("%q is not a cron spec", spec)
		}
	}()
	if _, err := cron.ParseStandard(spec); err != nil {
		return fmt.Sprintf("%q is not a cron spec (five fields or a descriptor such as @every 30s): %v", spec, err)
	}
	return ""
}

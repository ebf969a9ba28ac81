package vaulttransit

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/authpipe/authpipe-proxy/kms"
)

// DefaultPort is Vault's listener port, used when the URI names a host only.
const DefaultPort = "8200"

// Target is what a vault-transit:// URI names.
type Target struct {
	HostPort  string // host:port, lower-cased, port defaulted to 8200
	Mount     string // transit mount path, e.g. "transit" or "team/transit"
	Key       string // transit key name
	Namespace string // Vault Enterprise / OpenBao namespace ("" for the root)
	TLS       bool   // https (the default); false only with ?tls=false
}

// Address is the Vault API address (scheme://host:port).
func (t Target) Address() string {
	if t.TLS {
		return "https://" + t.HostPort
	}
	return "http://" + t.HostPort
}

// ID is the KEK id: "vault-transit:" + host:port/mount/key, with "?namespace=" when set.
// The TLS setting is not part of it: it does not change which key this is.
func (t Target) ID() string {
	id := Scheme + ":" + t.HostPort + "/" + t.Mount + "/" + t.Key
	if t.Namespace != "" {
		id += "?namespace=" + t.Namespace
	}
	return id
}

// segment is one path segment of a mount, key or namespace: Vault accepts more, but
// nothing a deployment needs falls outside this, and it keeps URIs unambiguous.
var segment = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// ParseURI parses vault-transit://<host[:port]>/<mount...>/<key>[?tls=false&namespace=ns].
// The key is the last path segment; the mount is everything before it. Credentials never
// go in the URI (they come from the VAULT_* environment), so user info is refused, as are
// unknown query parameters (a mistyped "tsl=false" must not silently mean TLS).
func ParseURI(uri string) (Target, error) {
	bad := func(format string, args ...any) (Target, error) {
		return Target{}, fmt.Errorf("%w: vault-transit URI: "+format, append([]any{kms.ErrConfig}, args...)...)
	}
	u, err := url.Parse(uri)
	if err != nil {
		// url.Error quotes the URI; it holds no secret because user info is refused below
		// and a parse failure here means it was not a URL at all.
		return bad("%v", err)
	}
	if u.Scheme != Scheme {
		return bad("scheme is %q, want %q", u.Scheme, Scheme)
	}
	if u.User != nil {
		return bad("credentials in the URI are refused; use VAULT_TOKEN, AppRole or Kubernetes auth")
	}
	if u.Opaque != "" || u.Host == "" {
		return bad("want vault-transit://host:port/mount/key")
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return bad("fragments are not allowed")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return bad("missing host")
	}
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return bad("empty port")
		}
		port = DefaultPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return bad("bad port %q", port)
	}
	t := Target{HostPort: net.JoinHostPort(strings.ToLower(host), port), TLS: true}

	if strings.Contains(u.EscapedPath(), "%") {
		return bad("percent-encoding in the path is not allowed")
	}
	segs := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(segs) < 2 {
		return bad("want a mount and a key in the path, e.g. /transit/authpipe")
	}
	for _, s := range segs {
		if !segment.MatchString(s) {
			return bad("bad path segment %q", s)
		}
	}
	t.Mount, t.Key = strings.Join(segs[:len(segs)-1], "/"), segs[len(segs)-1]

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	for name, vals := range q {
		if len(vals) != 1 {
			return bad("query parameter %q given %d times", name, len(vals))
		}
		v := vals[0]
		switch name {
		case "tls":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("tls=%q is not a boolean", v)
			}
			t.TLS = b
		case "namespace":
			ns := strings.Trim(v, "/")
			for _, s := range strings.Split(ns, "/") {
				if !segment.MatchString(s) {
					return bad("bad namespace %q", v)
				}
			}
			t.Namespace = ns
		default:
			return bad("unknown query parameter %q (want tls or namespace)", name)
		}
	}
	return t, nil
}

package oauthflow

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrInvalidRedirectURL is wrapped by every error of ValidateRedirectURL and
// ValidateAllowlist. The text after it is a short, fixed reason: it never repeats the URL,
// so a query string (which may carry anything) never reaches an error or a log line.
var ErrInvalidRedirectURL = errors.New("oauthflow: invalid redirect URL")

const (
	// MaxRedirectURLLength bounds an allowlist entry and a requested callback or return URL.
	MaxRedirectURLLength = 2048
	// MaxAllowlistEntries bounds callback_urls and return_urls of one provider configuration.
	MaxAllowlistEntries = 32
)

// ValidateRedirectURL checks one entry of a provider's callback_urls or return_urls
// allowlist, or a callback_url/return_url a connect session asks for.
//
// The rules are strict on purpose. An allowlist is compared byte for byte, so everything a
// browser would rewrite, and everything Go's net/url and a browser's WHATWG parser read
// differently, is refused rather than normalised: the URL must be an absolute https URL
// (plain http only for localhost, 127.0.0.1 and [::1], and only when allowHTTPLoopback, the
// dev profile) with a non-empty, lowercase ASCII host (punycode for IDNs), no userinfo, no
// fragment (not even an empty "#"), no wildcard, no backslash, no whitespace or control
// character, no percent-encoding in the authority, no full-width dots, no trailing dot, no
// default or malformed port, a canonical IP literal if any, a path of at least "/", no dot
// segments, and it must read back unchanged from url.Parse.
func ValidateRedirectURL(raw string, allowHTTPLoopback bool) error {
	if _, reason := strictURL(raw, urlRules{allowHTTPLoopback: allowHTTPLoopback, requirePath: true}); reason != "" {
		return fmt.Errorf("%w: %s", ErrInvalidRedirectURL, reason)
	}
	return nil
}

// ValidateAllowlist checks a whole callback_urls or return_urls list: at most
// MaxAllowlistEntries entries, each valid under ValidateRedirectURL, none repeated. An
// empty list is valid (the caller decides whether one is required).
func ValidateAllowlist(entries []string, allowHTTPLoopback bool) error {
	if len(entries) > MaxAllowlistEntries {
		return fmt.Errorf("%w: more than %d entries", ErrInvalidRedirectURL, MaxAllowlistEntries)
	}
	seen := make(map[string]struct{}, len(entries))
	for i, e := range entries {
		if err := ValidateRedirectURL(e, allowHTTPLoopback); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if _, dup := seen[e]; dup {
			return fmt.Errorf("entry %d: %w: duplicate entry", i, ErrInvalidRedirectURL)
		}
		seen[e] = struct{}{}
	}
	return nil
}

// MatchAllowlist reports whether raw is, byte for byte, one of the allowlist entries, and
// returns that entry. There is no prefix, suffix, case-insensitive or normalising match.
// raw must first pass ValidateRedirectURL; the check uses allowHTTPLoopback=true because
// the allowlist entries were already validated under the deployment's profile when they
// were configured, so a loopback http URL can only match if the operator allowed it there.
// An empty raw never matches (defaulting to the first entry is the caller's choice).
func MatchAllowlist(raw string, allowlist []string) (string, bool) {
	if ValidateRedirectURL(raw, true) != nil {
		return "", false
	}
	for _, entry := range allowlist {
		if entry == raw {
			return entry, true
		}
	}
	return "", false
}

// urlRules are the variations between a redirect URL and a catalog endpoint URL.
type urlRules struct {
	allowHTTPLoopback bool // accept http://localhost, http://127.0.0.1, http://[::1]
	requirePath       bool // refuse an empty path (browsers would turn it into "/")
}

// strictURL parses raw under the rules shared by redirect URLs and catalog URLs. It
// returns a fixed reason (never containing raw) when raw is refused, or "" and the URL.
func strictURL(raw string, r urlRules) (*url.URL, string) {
	if raw == "" {
		return nil, "empty URL"
	}
	if len(raw) > MaxRedirectURLLength {
		return nil, "URL too long"
	}
	if reason := checkURLBytes(raw); reason != "" {
		return nil, reason
	}
	var scheme string
	switch {
	case strings.HasPrefix(raw, "https://"):
		scheme = "https"
	case strings.HasPrefix(raw, "http://"):
		scheme = "http"
	default:
		return nil, "not an absolute https URL"
	}
	authority := raw[len(scheme)+3:]
	if i := strings.IndexAny(authority, "/?"); i >= 0 {
		authority = authority[:i]
	}
	if strings.Contains(authority, "@") {
		return nil, "userinfo is not allowed"
	}
	if strings.Contains(authority, "%") {
		return nil, "percent-encoding in host"
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Never wrap err: url.Error repeats the whole URL, query included.
		return nil, "malformed URL"
	}
	if u.Opaque != "" || u.User != nil || u.Fragment != "" || u.RawFragment != "" {
		return nil, "malformed URL"
	}
	host := u.Hostname()
	if host == "" {
		return nil, "empty host"
	}
	if reason := checkHost(u.Host, host); reason != "" {
		return nil, reason
	}
	if reason := checkPort(u.Host, u.Port(), scheme); reason != "" {
		return nil, reason
	}
	if scheme == "http" {
		if !r.allowHTTPLoopback {
			return nil, "scheme must be https"
		}
		if host != "localhost" && host != "127.0.0.1" && host != "::1" {
			return nil, "plain http is allowed only for localhost, 127.0.0.1 and [::1]"
		}
	}
	if r.requirePath && u.Path == "" {
		return nil, "path required (at least /)"
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		switch strings.ToLower(seg) {
		case ".", "..", "%2e", "%2e%2e", ".%2e", "%2e.":
			return nil, "dot segment in path"
		}
	}
	if u.String() != raw {
		return nil, "URL is not in canonical form"
	}
	return u, ""
}

// fullWidthDots are the dots that IDNA maps to "." (U+3002, U+FF0E, U+FF61).
const fullWidthDots = "\u3002\uff0e\uff61"

// checkURLBytes refuses every byte outside RFC 3986's URI characters, and the ones a
// browser and net/url treat differently.
func checkURLBytes(raw string) string {
	if strings.ContainsAny(raw, fullWidthDots) {
		return "IDN full-width dot"
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c >= 0x80:
			return "non-ASCII character (use punycode and percent-encoding)"
		case c <= 0x20 || c == 0x7f:
			return "whitespace or control character"
		case c == '\\':
			return "backslash"
		case c == '*':
			return "wildcard"
		case c == '#':
			return "fragment is not allowed"
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "malformed percent-encoding"
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~:/?@!$&()+,;=[]", c) >= 0:
		default:
			// '"', '\'', '<', '>', '^', '`', '{', '|', '}': browsers percent-encode some
			// of these and not others, so the bytes sent would differ from the entry.
			return "character not allowed in URL"
		}
	}
	return ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// checkHost checks the host of hostport: a canonical IPv6 literal in brackets, or a
// lowercase DNS name whose numeric forms (which browsers read as IPv4) are canonical.
func checkHost(hostport, host string) string {
	if strings.HasPrefix(hostport, "[") {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" || a.String() != host {
			return "IPv6 host is not canonical"
		}
		return ""
	}
	if strings.ContainsAny(host, "[]") {
		return "malformed host"
	}
	if len(host) > 253 {
		return "host too long"
	}
	if strings.HasSuffix(host, ".") {
		return "trailing dot in host"
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if l == "" {
			return "empty label in host"
		}
		if len(l) > 63 {
			return "host label too long"
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
			case 'A' <= c && c <= 'Z':
				return "host must be lowercase"
			default:
				return "invalid character in host"
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "host label starts or ends with a hyphen"
		}
	}
	// The WHATWG URL standard parses a host whose last label is a number (decimal, or
	// hex with 0x) as IPv4, accepting forms like 0x7f.1 or 127.1 that net/url keeps as
	// names. Accept only the canonical dotted quad.
	last := labels[len(labels)-1]
	if allDigits(last) || strings.HasPrefix(last, "0x") {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() || a.String() != host {
			return "IPv4 host is not canonical"
		}
	}
	return ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// checkPort refuses an empty port ("host:"), a port with leading zeros or out of range,
// and the scheme's default port, which browsers drop (so the bytes would differ).
func checkPort(hostport, port, scheme string) string {
	if strings.HasSuffix(hostport, ":") {
		return "empty port"
	}
	if port == "" {
		return ""
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return "invalid port"
	}
	if (scheme == "https" && n == 443) || (scheme == "http" && n == 80) {
		return "default port must be omitted"
	}
	return ""
}

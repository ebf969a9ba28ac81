package awskms

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/authpipe/authpipe-proxy/kms"
)

// Scheme is the URI scheme of this backend.
const Scheme = "awskms"

// maxKeyLen is the KMS limit on the KeyId parameter.
const maxKeyLen = 2048

// Config is what an awskms:// URI says.
type Config struct {
	// Key is the key as configured: a key id, alias/NAME, a key ARN or an alias ARN.
	Key string
	// Region is the AWS region: the ARN's region, else ?region=, else "" (the SDK default
	// chain decides: AWS_REGION, the shared config file).
	Region string
	// Endpoint overrides the KMS endpoint (a VPC interface endpoint, or a test server).
	Endpoint string
}

// ParseURI parses awskms://<key>[?region=R][&endpoint=URL]. The key is taken verbatim up
// to the first '?': ARNs hold ':' and '/', which a generic URL parser would read as a
// host, a port and a path. A region given both in an ARN and in the query must agree.
func ParseURI(uri string) (Config, error) {
	rest, ok := strings.CutPrefix(uri, Scheme+"://")
	if !ok {
		return Config{}, fmt.Errorf("%w: %q is not an %s:// URI", kms.ErrConfig, uri, Scheme)
	}
	if strings.Contains(rest, "#") {
		return Config{}, fmt.Errorf("%w: %s:// URIs take no fragment", kms.ErrConfig, Scheme)
	}
	key, rawQuery, _ := strings.Cut(rest, "?")
	cfg := Config{Key: key}
	arnRegion, err := checkKey(key)
	if err != nil {
		return Config{}, err
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %s:// query: %w", kms.ErrConfig, Scheme, err)
	}
	for name, vals := range q {
		if len(vals) != 1 || vals[0] == "" {
			return Config{}, fmt.Errorf("%w: %s:// parameter %q must be given once, non-empty", kms.ErrConfig, Scheme, name)
		}
		switch name {
		case "region":
			if !isRegion(vals[0]) {
				return Config{}, fmt.Errorf("%w: %s:// region %q is not a region name", kms.ErrConfig, Scheme, vals[0])
			}
			cfg.Region = vals[0]
		case "endpoint":
			if cfg.Endpoint, err = checkEndpoint(vals[0]); err != nil {
				return Config{}, err
			}
		default:
			return Config{}, fmt.Errorf("%w: %s:// has no parameter %q (want region, endpoint)", kms.ErrConfig, Scheme, name)
		}
	}
	if arnRegion != "" {
		if cfg.Region != "" && cfg.Region != arnRegion {
			return Config{}, fmt.Errorf("%w: %s:// region=%s contradicts the ARN's region %s", kms.ErrConfig, Scheme, cfg.Region, arnRegion)
		}
		cfg.Region = arnRegion
	}
	return cfg, nil
}

// checkKey validates the key reference and returns the region an ARN names.
func checkKey(key string) (region string, err error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %s:// key %q: %s", kms.ErrConfig, Scheme, key, why)
	}
	switch {
	case key == "":
		return bad("missing (want a key id, alias/NAME or an ARN)")
	case len(key) > maxKeyLen:
		return bad("too long")
	case strings.HasPrefix(key, "arn:"):
		// arn:PARTITION:kms:REGION:ACCOUNT:key/ID or ...:alias/NAME
		parts := strings.SplitN(key, ":", 6)
		if len(parts) != 6 || !isWord(parts[1]) || parts[2] != "kms" || !isRegion(parts[3]) || !isAccount(parts[4]) {
			return bad("not a KMS ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/ID or alias/NAME)")
		}
		if id, ok := strings.CutPrefix(parts[5], "key/"); ok && isKeyID(id) {
			return parts[3], nil
		}
		if name, ok := strings.CutPrefix(parts[5], "alias/"); ok && isAliasName(name) {
			return parts[3], nil
		}
		return bad("the ARN's resource is not key/ID or alias/NAME")
	case strings.HasPrefix(key, "alias/"):
		if !isAliasName(strings.TrimPrefix(key, "alias/")) {
			return bad("alias names hold only letters, digits, '/', '_' and '-'")
		}
		return "", nil
	case isKeyID(key):
		return "", nil
	default:
		return bad("not a key id, alias/NAME or ARN")
	}
}

func checkEndpoint(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("%w: %s:// endpoint must be an http(s) origin: scheme and host, no credentials, path or query", kms.ErrConfig, Scheme)
	}
	switch u.Scheme {
	case "https":
	case "http":
		// Plain HTTP only to this machine (tests, a local sidecar): a wrapped DEK and the
		// request signature must not cross a network in the clear.
		if !isLoopback(u.Hostname()) {
			return "", fmt.Errorf("%w: %s:// endpoint %q: http is allowed only to loopback; use https", kms.ErrConfig, Scheme, u.Host)
		}
	default:
		return "", fmt.Errorf("%w: %s:// endpoint scheme must be https (or http to loopback)", kms.ErrConfig, Scheme)
	}
	return u.String(), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isKeyID(s string) bool { // a UUID or mrk-<hex>
	return s != "" && len(s) <= 128 && all(s, func(r rune) bool { return isAlnum(r) || r == '-' })
}

func isAliasName(s string) bool {
	return s != "" && len(s) <= 250 && all(s, func(r rune) bool { return isAlnum(r) || r == '/' || r == '_' || r == '-' })
}

func isRegion(s string) bool {
	return s != "" && len(s) <= 64 && all(s, func(r rune) bool { return isLowerOrDigit(r) || r == '-' })
}

func isWord(s string) bool { return isRegion(s) }

func isAccount(s string) bool {
	return len(s) == 12 && all(s, func(r rune) bool { return r >= '0' && r <= '9' })
}

func isAlnum(r rune) bool {
	return isLowerOrDigit(r) || (r >= 'A' && r <= 'Z')
}

func isLowerOrDigit(r rune) bool { return (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') }

func all(s string, f func(rune) bool) bool {
	for _, r := range s {
		if !f(r) {
			return false
		}
	}
	return true
}

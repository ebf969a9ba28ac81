package gcpkms

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/authpipe/authpipe-proxy/kms"
)

// Scheme is the URI scheme of this backend.
const Scheme = "gcpkms"

// Config is what a gcpkms:// URI says.
type Config struct {
	// Key is the CryptoKey's resource name,
	// projects/P/locations/L/keyRings/R/cryptoKeys/K.
	Key string
	// Endpoint overrides the KMS endpoint as host:port ("" = cloudkms.googleapis.com:443).
	Endpoint string
	// Insecure: the endpoint is a loopback test server reached over plain gRPC, without
	// credentials (only with endpoint=http://127.0.0.1:PORT or localhost).
	Insecure bool
}

// ParseURI parses gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[?endpoint=URL].
// endpoint is https://HOST[:PORT] (a Private Service Connect endpoint, say) or
// http://127.0.0.1:PORT (a local test server; plain gRPC is refused anywhere else).
func ParseURI(uri string) (Config, error) {
	rest, ok := strings.CutPrefix(uri, Scheme+"://")
	if !ok {
		return Config{}, fmt.Errorf("%w: %q is not a %s:// URI", kms.ErrConfig, uri, Scheme)
	}
	if strings.Contains(rest, "#") {
		return Config{}, fmt.Errorf("%w: %s:// URIs take no fragment", kms.ErrConfig, Scheme)
	}
	name, rawQuery, _ := strings.Cut(rest, "?")
	if err := checkKeyName(name); err != nil {
		return Config{}, err
	}
	cfg := Config{Key: name}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %s:// query: %w", kms.ErrConfig, Scheme, err)
	}
	for param, vals := range q {
		if len(vals) != 1 || vals[0] == "" {
			return Config{}, fmt.Errorf("%w: %s:// parameter %q must be given once, non-empty", kms.ErrConfig, Scheme, param)
		}
		switch param {
		case "endpoint":
			if cfg.Endpoint, cfg.Insecure, err = checkEndpoint(vals[0]); err != nil {
				return Config{}, err
			}
		default:
			return Config{}, fmt.Errorf("%w: %s:// has no parameter %q (want endpoint)", kms.ErrConfig, Scheme, param)
		}
	}
	return cfg, nil
}

// checkKeyName accepts projects/P/locations/L/keyRings/R/cryptoKeys/K with the characters
// Cloud KMS allows in each id. A cryptoKeyVersions suffix is refused: Decrypt takes the
// CryptoKey, and Encrypt under the CryptoKey uses its primary version, which is what lets
// rotation inside Cloud KMS work without a configuration change.
func checkKeyName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s:// key %q: %s (want projects/P/locations/L/keyRings/R/cryptoKeys/K)", kms.ErrConfig, Scheme, name, why)
	}
	segs := strings.Split(name, "/")
	if len(segs) != 8 {
		if len(segs) > 8 && len(segs) >= 9 && segs[8] == "cryptoKeyVersions" {
			return bad("name the CryptoKey, not one of its versions")
		}
		return bad("wrong number of path segments")
	}
	for i, want := range []string{"projects", "locations", "keyRings", "cryptoKeys"} {
		if segs[2*i] != want {
			return bad("segment " + fmt.Sprint(2*i+1) + " must be " + want)
		}
		id := segs[2*i+1]
		if id == "" || len(id) > 63 || !all(id, func(r rune) bool {
			return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':'
		}) {
			return bad(want + " id must be 1-63 letters, digits, '-', '_', '.' or ':'")
		}
	}
	return nil
}

func checkEndpoint(raw string) (hostport string, insecure bool, err error) {
	u, perr := url.Parse(raw)
	if perr != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", false, fmt.Errorf("%w: %s:// endpoint must be https://HOST[:PORT] (or http://127.0.0.1:PORT for a local test server)", kms.ErrConfig, Scheme)
	}
	switch u.Scheme {
	case "https":
		port := u.Port()
		if port == "" {
			port = "443"
		}
		return net.JoinHostPort(u.Hostname(), port), false, nil
	case "http":
		// Plain gRPC only to this machine (tests): no credential is ever sent there, and a
		// wrapped DEK must not cross a network in the clear.
		if !isLoopback(u.Hostname()) || u.Port() == "" {
			return "", false, fmt.Errorf("%w: %s:// endpoint %q: http is allowed only to loopback with a port; use https", kms.ErrConfig, Scheme, u.Host)
		}
		return u.Host, true, nil
	default:
		return "", false, fmt.Errorf("%w: %s:// endpoint scheme must be https (or http to loopback)", kms.ErrConfig, Scheme)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func all(s string, f func(rune) bool) bool {
	for _, r := range s {
		if !f(r) {
			return false
		}
	}
	return true
}

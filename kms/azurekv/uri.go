package azurekv

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/authpipe/authpipe-proxy/kms"
)

// Scheme is the URI scheme of this backend.
const Scheme = "azurekv"

// The wrap algorithms (Key Vault's names).
const (
	AlgRSAOAEP256 = "RSA-OAEP-256"
	AlgA256KW     = "A256KW"
)

// Config is what an azurekv:// URI says.
type Config struct {
	// Host is the vault's or Managed HSM's host, e.g. myvault.vault.azure.net.
	Host string
	// Domain is the host's service domain (vault.azure.net, managedhsm.azure.net, …): the
	// token's resource.
	Domain string
	// ManagedHSM: the host is a Managed HSM.
	ManagedHSM bool
	// Name is the key's name; Version is "" (the current version) or a version id.
	Name, Version string
	// Alg is the wrap algorithm.
	Alg string
	// Endpoint overrides the URL requests go to (a loopback test server).
	Endpoint string
}

// VaultURL is where requests go: https://Host, or the endpoint override.
func (c Config) VaultURL() string {
	if c.Endpoint != "" {
		return c.Endpoint
	}
	return "https://" + c.Host
}

// domains are Key Vault's and Managed HSM's service domains in the Azure clouds.
var domains = map[string]bool{ // domain -> Managed HSM
	"vault.azure.net":              false,
	"vault.azure.cn":               false,
	"vault.usgovcloudapi.net":      false,
	"managedhsm.azure.net":         true,
	"managedhsm.azure.cn":          true,
	"managedhsm.usgovcloudapi.net": true,
}

// ParseURI parses azurekv://<vault>.<domain>/keys/<name>[/<version>][?alg=…][&endpoint=…].
func ParseURI(uri string) (Config, error) {
	bad := func(format string, a ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: %s:// "+format, append([]any{kms.ErrConfig, Scheme}, a...)...)
	}
	rest, ok := strings.CutPrefix(uri, Scheme+"://")
	if !ok {
		return Config{}, fmt.Errorf("%w: %q is not an %s:// URI", kms.ErrConfig, uri, Scheme)
	}
	if strings.Contains(rest, "#") {
		return bad("URIs take no fragment")
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	host, path, _ := strings.Cut(rest, "/")
	vault, domain, _ := strings.Cut(strings.ToLower(host), ".")
	hsm, known := domains[domain]
	if !known || !isVaultName(vault) {
		return bad("host %q is not <name>.vault.azure.net or <name>.managedhsm.azure.net (or a sovereign cloud's)", host)
	}
	cfg := Config{Host: strings.ToLower(host), Domain: domain, ManagedHSM: hsm, Alg: AlgRSAOAEP256}
	if hsm {
		cfg.Alg = AlgA256KW
	}
	segs := strings.Split(path, "/")
	if len(segs) < 2 || len(segs) > 3 || segs[0] != "keys" || !isKeyName(segs[1]) || (len(segs) == 3 && !isVersion(segs[2])) {
		return bad("path must be /keys/<name>[/<version>] (names: 1-127 letters, digits and '-')")
	}
	cfg.Name = segs[1]
	if len(segs) == 3 {
		cfg.Version = segs[2]
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	for param, vals := range q {
		if len(vals) != 1 || vals[0] == "" {
			return bad("parameter %q must be given once, non-empty", param)
		}
		switch param {
		case "alg":
			switch vals[0] {
			case AlgRSAOAEP256:
			case AlgA256KW:
				if !hsm {
					return bad("alg=A256KW needs a Managed HSM: a vault holds no AES keys")
				}
			default:
				return bad("alg %q is not RSA-OAEP-256 or A256KW", vals[0])
			}
			cfg.Alg = vals[0]
		case "endpoint":
			u, err := url.Parse(vals[0])
			if err != nil || u.Scheme != "https" || !isLoopback(u.Hostname()) || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
				return bad("endpoint must be https://127.0.0.1:PORT (a local test server; loopback only)")
			}
			cfg.Endpoint = "https://" + u.Host
		default:
			return bad("has no parameter %q (want alg, endpoint)", param)
		}
	}
	return cfg, nil
}

func isVaultName(s string) bool {
	return len(s) >= 3 && len(s) <= 24 && all(s, func(r rune) bool { return isAlnum(r) || r == '-' })
}

func isKeyName(s string) bool {
	return s != "" && len(s) <= 127 && all(s, func(r rune) bool { return isAlnum(r) || r == '-' })
}

func isVersion(s string) bool {
	return s != "" && len(s) <= 64 && all(s, isAlnum)
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
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

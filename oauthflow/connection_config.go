package oauthflow

// Per-connection configuration (API.md "Per-connection configuration"): a provider
// declares connection_config parameters, used as {name} placeholders in its URLs, and each
// connection fills them with its own values (a Shopify shop, a Zendesk subdomain, an Okta
// org). A value fills one whole host label or one whole path segment, never more: the
// fixed part of a templated host holds a registrable domain (checked against the public
// suffix list), so no value can move a URL to another site, add a port, a path or a query.
// The filled URLs are the connection's: its credentials are bound to their origins.

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// ConfigParam declares one connection_config parameter: its value must fully match
// Pattern (RE2, anchored) or be one of Enum, and fit where the placeholder stands (a
// lowercase DNS label in a host, a path segment of [A-Za-z0-9._~-] in a path).
type ConfigParam struct {
	Name        string   `yaml:"name" json:"name"`
	DisplayName string   `yaml:"display_name,omitempty" json:"display_name,omitempty"`
	Pattern     string   `yaml:"pattern,omitempty" json:"pattern,omitempty"`
	Enum        []string `yaml:"enum,omitempty" json:"enum,omitempty"`
}

// MaxConfigParams caps a provider's connection_config declarations.
const MaxConfigParams = 8

var (
	pathValueRE  = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
	configNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	// Values of a declared parameter are at most this long, whatever the pattern says.
	maxConfigValue = 128
)

// Label shows the parameter to the end user on the connect page.
func (c ConfigParam) Label() string {
	if c.DisplayName != "" {
		return c.DisplayName
	}
	return c.Name
}

func (c ConfigParam) validate() string {
	if !configNameRE.MatchString(c.Name) {
		return "name must be [a-z][a-z0-9_]{0,31}"
	}
	if len(c.DisplayName) > 100 || strings.ContainsFunc(c.DisplayName, isControl) {
		return "display_name must be at most 100 printable characters"
	}
	switch {
	case (c.Pattern == "") == (len(c.Enum) == 0):
		return "exactly one of pattern and enum"
	case c.Pattern != "":
		if len(c.Pattern) > 256 {
			return "pattern longer than 256 characters"
		}
		if _, err := regexp.Compile(c.Pattern); err != nil {
			return "pattern is not an RE2 expression"
		}
	default:
		if len(c.Enum) > 100 {
			return "enum has more than 100 values"
		}
		for _, v := range c.Enum {
			if v == "" || len(v) > maxConfigValue || !pathValueRE.MatchString(v) {
				return "enum values must be 1-128 characters of [A-Za-z0-9._~-]"
			}
		}
	}
	return ""
}

// match reports whether v is an allowed value of c (its pattern, anchored, or its enum).
func (c ConfigParam) match(v string) bool {
	if v == "" || len(v) > maxConfigValue {
		return false
	}
	if c.Pattern != "" {
		re, err := regexp.Compile(`^(?:` + c.Pattern + `)$`)
		return err == nil && re.MatchString(v)
	}
	return slices.Contains(c.Enum, v)
}

// NeedsConnectionConfig reports whether a connection of p needs connection_config values.
func (p Provider) NeedsConnectionConfig() bool { return len(p.Placeholders()) > 0 }

// validateConnectionConfig checks the declarations: unique, well-formed, and every
// placeholder of a URL field declared.
func (p Provider) validateConnectionConfig() string {
	if len(p.ConnectionConfig) > MaxConfigParams {
		return fmt.Sprintf("connection_config: at most %d parameters", MaxConfigParams)
	}
	seen := map[string]bool{}
	for _, c := range p.ConnectionConfig {
		if reason := c.validate(); reason != "" {
			return "connection_config: " + reason
		}
		if seen[c.Name] {
			return "connection_config: duplicate parameter " + c.Name
		}
		seen[c.Name] = true
	}
	for _, name := range p.Placeholders() {
		if !seen[name] {
			return "placeholder {" + name + "} is not declared in connection_config"
		}
	}
	return ""
}

// placeholderUse says where placeholder name stands in p's URLs: in a host, in a path.
func (p Provider) placeholderUse(name string) (inHost, inPath bool) {
	mark := "{" + name + "}"
	for _, f := range p.urlFields() {
		raw := *f.val
		if !strings.Contains(raw, mark) {
			continue
		}
		auth, rest := splitAuthority(raw)
		inHost = inHost || strings.Contains(auth, mark)
		inPath = inPath || strings.Contains(rest, mark)
	}
	return inHost, inPath
}

// splitAuthority splits an absolute URL after its authority.
func splitAuthority(raw string) (authority, rest string) {
	i := strings.Index(raw, "://")
	if i < 0 {
		return "", raw
	}
	if j := strings.IndexAny(raw[i+3:], "/?#"); j >= 0 {
		return raw[:i+3+j], raw[i+3+j:]
	}
	return raw, ""
}

// CheckConnectionConfig checks values against p's declarations (Expand's rules) and
// returns 400 invalid_connection_config naming the first bad or missing parameter (never
// the value).
func (p Provider) CheckConnectionConfig(values map[string]string) error {
	_, err := p.Expand(values)
	return err
}

// Expand returns p with every placeholder of its URL fields filled with values[name]: the
// connection's provider. Every declared placeholder needs a value, every value must name a
// declared parameter, match its pattern or enum, and fit where it stands: a lowercase DNS
// label ([a-z0-9-], 1-63, no leading or trailing hyphen) in a host, a path segment
// ([A-Za-z0-9._~-], not "." or "..") in a path. The result is checked to parse. An error is
// 400 invalid_connection_config (problem.ErrInvalidConnectionConfig) naming the parameter,
// never the value. A provider without placeholders is returned as it is for no values.
func (p Provider) Expand(values map[string]string) (Provider, error) {
	names := p.Placeholders()
	if len(names) == 0 && len(values) == 0 {
		return p, nil
	}
	bad := func(name, why string) error {
		return problem.ErrInvalidConnectionConfig.WithField(name, why)
	}
	decl := map[string]ConfigParam{}
	for _, c := range p.ConnectionConfig {
		decl[c.Name] = c
	}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		c, ok := decl[k]
		if !ok {
			return Provider{}, bad(k, "not a connection_config parameter of this provider")
		}
		// A declared parameter that no URL uses (a jwt_bearer "subject") is a value the
		// proxy sends elsewhere: its pattern or enum and length only.
		if v := values[k]; !slices.Contains(names, k) && (v == "" || !c.match(v)) {
			return Provider{}, bad(k, "does not match the parameter's pattern or values")
		}
	}
	out := p.Clone()
	for _, name := range names {
		c, declared := decl[name]
		v, ok := values[name]
		switch {
		case !declared:
			return Provider{}, bad(name, "the provider does not declare this parameter")
		case !ok || v == "":
			return Provider{}, bad(name, "required")
		case !c.match(v):
			return Provider{}, bad(name, "does not match the parameter's pattern or values")
		}
		inHost, inPath := p.placeholderUse(name)
		if inHost && !dnsLabelRE.MatchString(v) {
			return Provider{}, bad(name, "must be a lowercase DNS label")
		}
		if inPath && (!pathValueRE.MatchString(v) || v == "." || v == "..") {
			return Provider{}, bad(name, "must be one path segment of [A-Za-z0-9._~-]")
		}
		for _, f := range out.urlFields() {
			*f.val = strings.ReplaceAll(*f.val, "{"+name+"}", v)
		}
	}
	// The template passed its validation (the catalog's, or the providers service's URL
	// policy) and each value is one label or segment: the filled URLs need only parse.
	for _, f := range out.urlFields() {
		if *f.val == "" {
			continue
		}
		if u, err := url.Parse(*f.val); err != nil || u.Host == "" || strings.ContainsAny(*f.val, "{}") {
			return Provider{}, problem.ErrInvalidConnectionConfig.WithDetail("the filled " + f.name + " is not a URL")
		}
	}
	return out, nil
}

// registrableSuffix reports whether the fixed labels after a host's last placeholder hold
// a registrable domain: a domain below a public suffix (zendesk.com, salesforce.com), or a
// suffix the public suffix list's private section gives to one operator (myshopify.com),
// never an ICANN public suffix (com, co.uk).
func registrableSuffix(suffix string) bool {
	if _, err := publicsuffix.EffectiveTLDPlusOne(suffix); err == nil {
		return true
	}
	ps, icann := publicsuffix.PublicSuffix(suffix)
	return ps == suffix && !icann && strings.Contains(suffix, ".")
}

// RegistrableDomain is the domain a host of a provider template stays in whatever its
// placeholders are filled with: the registrable domain of the fixed part, or the private
// public suffix itself (Fuzz tests check Expand against it).
func RegistrableDomain(fixedSuffix string) string {
	if d, err := publicsuffix.EffectiveTLDPlusOne(fixedSuffix); err == nil {
		return d
	}
	return fixedSuffix
}

// ForConnection is the provider as one connection uses it: its URLs filled with the
// connection's connection_config values (Expand) and, when the provider has an api_base
// metadata field and the connection holds it, that value (checked against the field's
// origins) as its API base. Every place that sends a connection's credential (refresh,
// forwarding, revocation, health check) and the places that bind it when it is stored
// call this, so a credential's bound origins and its destinations come from one
// decision. A provider without placeholders or api_base field, for a connection without
// values, is returned unchanged.
func (p Provider) ForConnection(config, metadata map[string]string) (Provider, error) {
	out, err := p.Expand(config)
	if err != nil {
		return Provider{}, err
	}
	if field := p.APIBaseField(); field != "" {
		if v, ok := metadata[field]; ok && v != "" {
			if err := p.CheckMetadataValue(field, v); err != nil {
				return Provider{}, problem.ErrInvalidRequest.WithField("metadata."+field, "not within the field's declared origins")
			}
			out.APIBaseURL = v // out is a copy: p's fields are not changed
		}
	}
	if len(config) > 0 {
		out.config = maps.Clone(config)
	}
	return out, nil
}

// ConfigValue is the connection's connection_config value of name in a provider that
// ForConnection filled ("" when none).
func (p Provider) ConfigValue(name string) string { return p.config[name] }

// ConnectionProvider is p.ForConnection with stored connection c's values.
func ConnectionProvider(p Provider, c store.Connection) (Provider, error) {
	return p.ForConnection(store.ParseJSONObject(c.ConnectionConfig), store.ParseJSONObject(c.Metadata))
}

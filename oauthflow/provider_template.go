package oauthflow

// Provider templates: placeholders in a provider's URL fields ({tenant}, {region}) and
// their expansion into a concrete provider with values a workspace supplies.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// urlFields lists a provider's URL fields by their YAML names.
func (p *Provider) urlFields() []struct {
	name string
	val  *string
} {
	return []struct {
		name string
		val  *string
	}{
		{"authorization_url", &p.AuthorizationURL},
		{"token_url", &p.TokenURL},
		{"refresh_url", &p.RefreshURL},
		{"revocation_url", &p.RevocationURL},
		{"issuer", &p.Issuer},
		{"api_base_url", &p.APIBaseURL},
		{"docs_url", &p.DocsURL},
		{"health_check_url", &p.HealthCheckURL},
	}
}

// Placeholders returns the names of the placeholders in p's URL fields, sorted.
func (p Provider) Placeholders() []string {
	set := map[string]struct{}{}
	for _, f := range p.urlFields() {
		for _, m := range placeholderRE.FindAllStringSubmatch(*f.val, -1) {
			set[m[1]] = struct{}{}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Expand returns p with every placeholder replaced by values[name]. Every placeholder
// needs a value, every value must name a placeholder, and every value must be a lowercase
// DNS label ([a-z0-9-], 1-63 characters, no leading or trailing hyphen), so that it can
// never change the host's registrable domain, add a path or a port. The result is
// validated. Errors name the placeholder, never the value.
func (p Provider) Expand(values map[string]string) (Provider, error) {
	names := p.Placeholders()
	for k := range values {
		if !slices.Contains(names, k) {
			return Provider{}, fmt.Errorf("%w: %q: no placeholder {%s}", ErrInvalidProvider, p.Name, k)
		}
	}
	out := p.Clone()
	for _, name := range names {
		v, ok := values[name]
		if !ok {
			return Provider{}, fmt.Errorf("%w: %q: placeholder {%s} needs a value", ErrInvalidProvider, p.Name, name)
		}
		if !dnsLabelRE.MatchString(v) {
			return Provider{}, fmt.Errorf("%w: %q: value of {%s} must be a lowercase DNS label", ErrInvalidProvider, p.Name, name)
		}
		for _, f := range out.urlFields() {
			*f.val = strings.ReplaceAll(*f.val, "{"+name+"}", v)
		}
	}
	if err := out.Validate(); err != nil {
		return Provider{}, err
	}
	return out, nil
}

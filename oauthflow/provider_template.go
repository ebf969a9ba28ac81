package oauthflow

// Provider templates: placeholders in a provider's URL fields ({tenant}, {region}) and
// their expansion into a concrete provider with values a workspace supplies.

import (
	"maps"
	"slices"
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

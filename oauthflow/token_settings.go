package oauthflow

// Token request settings of a provider (API.md "Token request settings"): what a code
// exchange and a refresh send beyond RFC 6749 (token_params, refresh_params, the body
// format), where a non-standard response keeps its tokens (token_response_fields), and
// which response fields a connection keeps as metadata (metadata_fields). The request
// and the response parsing themselves are in token_request.go.

import (
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// Token request body formats.
const (
	FormatForm = "form" // application/x-www-form-urlencoded (RFC 6749, the default)
	FormatJSON = "json" // application/json (Notion, Atlassian)
)

// MetadataField is one token-response field a connection keeps as metadata. Path is where
// it is in the JSON response (dot-separated object keys; default Name). A field with
// Origins is a URL: its value must be an absolute https URL whose origin is one of them
// (an origin may hold {placeholder} host labels: each stands for exactly one DNS label),
// else the token response is refused. APIBase makes the field's value the connection's
// API base for forwarding; its origin is bound to the connection's access token when the
// token is stored, like any other.
type MetadataField struct {
	Name    string   `yaml:"name" json:"name"`
	Path    string   `yaml:"path,omitempty" json:"path,omitempty"`
	Origins []string `yaml:"origins,omitempty" json:"origins,omitempty"`
	APIBase bool     `yaml:"api_base,omitempty" json:"api_base,omitempty"`
}

// ResponsePath is where the field is in the token response.
func (m MetadataField) ResponsePath() string {
	if m.Path != "" {
		return m.Path
	}
	return m.Name
}

// MaxMetadataFields caps a provider's metadata_fields.
const MaxMetadataFields = 16

var (
	responsePathRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,4}$`)
	metadataNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// tokenResponseKeys are the fields token_response_fields may relocate.
var tokenResponseKeys = []string{"access_token", "refresh_token", "expires_in", "token_type", "scope"}

// reservedTokenParam reports the parameters a token request sets itself; token_params and
// refresh_params can never replace them.
func reservedTokenParam(name string) bool {
	switch strings.ToLower(name) {
	case "grant_type", "code", "code_verifier", "redirect_uri", "refresh_token", "client_id", "client_secret",
		"client_assertion", "client_assertion_type", "assertion", "scope":
		return true
	}
	return false
}

// APIBaseField is the metadata field that names the connection's API base ("" none).
func (p Provider) APIBaseField() string {
	for _, m := range p.MetadataFields {
		if m.APIBase {
			return m.Name
		}
	}
	return ""
}

// validateTokenSettings checks the token request settings.
func (p Provider) validateTokenSettings() string {
	for _, params := range []struct {
		name string
		m    map[string]string
	}{{"token_params", p.TokenParams}, {"refresh_params", p.RefreshParams}} {
		for k, v := range params.m {
			if !paramNameRE.MatchString(k) {
				return params.name + ": bad parameter name"
			}
			if reservedTokenParam(k) {
				return params.name + ": " + k + " is set by the request"
			}
			if v == "" || len(v) > 256 || strings.ContainsFunc(v, isControl) {
				return params.name + ": value of " + k + " must be 1-256 printable characters"
			}
		}
	}
	switch p.TokenRequestFormat {
	case "", FormatForm, FormatJSON:
	default:
		return "token_request_format must be form or json"
	}
	for k, path := range p.TokenResponseFields {
		if !slices.Contains(tokenResponseKeys, k) {
			return "token_response_fields: keys are access_token, refresh_token, expires_in, token_type, scope"
		}
		if !responsePathRE.MatchString(path) {
			return "token_response_fields: a path is 1-5 dot-separated keys of [A-Za-z0-9_-]"
		}
	}
	if len(p.MetadataFields) > MaxMetadataFields {
		return "metadata_fields: at most 16"
	}
	seen, bases := map[string]bool{}, 0
	for _, m := range p.MetadataFields {
		if !metadataNameRE.MatchString(m.Name) || seen[m.Name] {
			return "metadata_fields: names are distinct [a-z][a-z0-9_]{0,63}"
		}
		seen[m.Name] = true
		if !responsePathRE.MatchString(m.ResponsePath()) {
			return "metadata_fields: a path is 1-5 dot-separated keys of [A-Za-z0-9_-]"
		}
		if m.APIBase {
			bases++
			if len(m.Origins) == 0 {
				return "metadata_fields: an api_base field needs origins"
			}
		}
		if len(m.Origins) > 16 {
			return "metadata_fields: at most 16 origins per field"
		}
		for _, o := range m.Origins {
			if reason := checkOriginPattern(o); reason != "" {
				return "metadata_fields: origins: " + reason
			}
		}
	}
	if bases > 1 {
		return "metadata_fields: at most one api_base field"
	}
	if bases == 1 && p.APIBaseURL != "" {
		return "metadata_fields: api_base and api_base_url exclude each other"
	}
	return ""
}

// checkOriginPattern checks one origin of a URL-valued metadata field: https://host[:port]
// with nothing after it; {placeholder} host labels as in a URL template.
func checkOriginPattern(o string) string {
	if reason := checkTemplateURL(o, false); reason != "" {
		return reason
	}
	if _, rest := splitAuthority(o); rest != "" {
		return "an origin has no path, query or fragment"
	}
	return ""
}

// CheckMetadata checks metadata an application gives with a connection (POST
// /v1/connections): at most 16 entries, names [a-z][a-z0-9_]{0,63}, values 1-2048
// printable characters, and a value of a URL-valued field of the provider within its
// declared origins (CheckMetadataValue). 400 invalid_request naming the field.
func (p Provider) CheckMetadata(md map[string]string) error {
	if len(md) > MaxMetadataFields {
		return problem.ErrInvalidRequest.WithField("metadata", "at most 16 entries")
	}
	for _, k := range slices.Sorted(maps.Keys(md)) {
		v := md[k]
		if !metadataNameRE.MatchString(k) {
			return problem.ErrInvalidRequest.WithField("metadata", "names are [a-z][a-z0-9_]{0,63}")
		}
		if v == "" || len(v) > maxMetadataValue || strings.ContainsFunc(v, isControl) {
			return problem.ErrInvalidRequest.WithField("metadata."+k, "1-2048 printable characters")
		}
		if p.CheckMetadataValue(k, v) != nil {
			return problem.ErrInvalidRequest.WithField("metadata."+k, "not an https URL within the field's declared origins")
		}
	}
	return nil
}

package oauthflow

import (
	"fmt"
	"strings"
)

// Markers of the generated section of docs/providers.md (WebhookSchemesMarkdown); the
// rest of that file is written by hand.
const (
	WebhookSchemesBegin = "<!-- BEGIN webhook schemes: generated from oauthflow/catalog/*.yaml by `go test ./oauthflow -run TestProvidersDoc -update`; do not edit -->"
	WebhookSchemesEnd   = "<!-- END webhook schemes -->"
)

// WebhookSchemesMarkdown renders the catalog's webhook signature schemes as the table of
// docs/providers.md, between the markers: one row per entry that declares one.
func WebhookSchemesMarkdown(c *Catalog) string {
	var b strings.Builder
	b.WriteString(WebhookSchemesBegin + "\n\n")
	b.WriteString("| provider | MAC | header (prefix, encoding) | signed content | timestamp (tolerance) | replay window | event id |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	code := func(s string) string {
		if s == "" {
			return "—"
		}
		return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
	}
	for _, p := range c.All() {
		w := p.Webhook
		if w == nil {
			continue
		}
		header := code(w.SignatureHeader)
		if w.SignatureFormat == "kv" {
			header += " (pairs, signatures under " + code(w.SignatureKey) + ")"
		}
		header += fmt.Sprintf(" (%s%s)", map[bool]string{true: code(w.Prefix) + ", "}[w.Prefix != ""], w.Encoding)
		ts, window := "none", (w.RememberFor()).String()
		if w.Timestamp != "" {
			format := w.TimestampFormat
			if format == "" {
				format = "unix"
			}
			ts = fmt.Sprintf("%s, %s (±%s)", code(w.Timestamp), format, w.Tolerance)
		}
		name := p.Name
		if w.DocsURL != "" {
			name = "[" + p.Name + "](" + w.DocsURL + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", name, strings.ToUpper(w.Algorithm),
			header, code(w.Signed), ts, window, code(w.EventID))
	}
	b.WriteString("\n" + WebhookSchemesEnd)
	return b.String()
}

// Markers of the generated providers table of docs/providers.md (ProvidersMarkdown).
const (
	ProvidersBegin = "<!-- BEGIN providers: generated from oauthflow/catalog/*.yaml by `go test ./oauthflow -run TestProvidersDoc -update`; do not edit -->"
	ProvidersEnd   = "<!-- END providers -->"
)

// AuthModes lists every auth mode in the order the providers table counts them.
var AuthModes = []AuthMode{AuthModeOAuth2, AuthModeAPIKey, AuthModeBasic, AuthModeClientCredentials, AuthModeJWTBearer, AuthModeGitHubApp}

// ProvidersMarkdown renders the whole catalog as the providers table of
// docs/providers.md, between the markers: the counts per auth mode, then one row per entry
// (sorted by name) with its documentation link, mode (and client authentication where it
// is not the usual secret), categories, documented PKCE, RFC 9207 issuer checking,
// an RFC 7009 revocation endpoint and the per-connection configuration it asks for.
func ProvidersMarkdown(c *Catalog) string {
	all := c.All()
	count := map[AuthMode]int{}
	for _, p := range all {
		count[p.AuthMode]++
	}
	var b strings.Builder
	b.WriteString(ProvidersBegin + "\n\n")
	fmt.Fprintf(&b, "%d providers:", len(all))
	for i, m := range AuthModes {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&b, "%s `%s` %d", sep, m, count[m])
	}
	b.WriteString(".\n\n")
	b.WriteString("| provider | display name | auth mode | categories | PKCE | RFC 9207 | revocation | per-connection config |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, p := range all {
		name := p.Name
		if p.DocsURL != "" {
			name = "[" + p.Name + "](" + p.DocsURL + ")"
		}
		mode := "`" + string(p.AuthMode) + "`"
		switch {
		case p.AuthMode == AuthModeAPIKey && p.APIKeyAuth == APIKeyBasic:
			mode += " (Basic)"
		case p.AuthMode.Minted() && p.TokenAuthMethod != "" && p.TokenAuthMethod != ClientSecretBasic && p.TokenAuthMethod != ClientSecretPost:
			mode += " (`" + string(p.TokenAuthMethod) + "`)"
		}
		cats := "—"
		if len(p.Categories) > 0 {
			cats = strings.Join(p.Categories, ", ")
		}
		pkce, iss, revoke := "—", "—", "—"
		if p.AuthMode == AuthModeOAuth2 && p.PKCE {
			pkce = "yes"
		}
		switch {
		case p.RequireIss:
			iss = "required"
		case p.Issuer != "":
			iss = "checked when sent"
		}
		if p.RevocationURL != "" {
			revoke = "RFC 7009"
		}
		config := "—"
		if len(p.ConnectionConfig) > 0 {
			names := make([]string, len(p.ConnectionConfig))
			for i, cp := range p.ConnectionConfig {
				names[i] = "`" + cp.Name + "`"
			}
			config = strings.Join(names, ", ")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", name, esc(p.DisplayName), mode, cats, pkce, iss, revoke, config)
	}
	b.WriteString("\n" + ProvidersEnd)
	return b.String()
}

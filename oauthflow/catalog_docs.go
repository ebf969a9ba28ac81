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

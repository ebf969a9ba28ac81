package vault

import (
	"regexp"
	"slices"
	"strings"
)

// Origin patterns. A provider whose URLs hold {placeholder} host labels (a template:
// https://{shop}.myshopify.com) sends its client secret to the token endpoint of every
// connection's filled URL. Its client secret is therefore bound to the pattern
// "https://{}.myshopify.com:443": each "{}" label stands for exactly one DNS label, the
// other labels, the scheme and the port are fixed. The provider's validation (oauthflow)
// makes sure the fixed labels hold a registrable domain, so a pattern never reaches
// another site. A connection's tokens are always bound to its filled origins, never to a
// pattern.

// patternLabel stands for one placeholder label in a canonical origin pattern.
const patternLabel = "{}"

// placeholderInHost matches a {name} placeholder.
var placeholderInHost = regexp.MustCompile(`\{[a-z][a-z0-9_]{0,31}\}`)

// labelMarker is a valid DNS label that stands in for a placeholder while a URL is parsed.
const labelMarker = "x--origin-placeholder--x"

var dnsLabel = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// OriginPatternOf is the canonical origin of raw, or, when raw's host holds {placeholder}
// labels, its canonical origin pattern ("https://{}.example.com:443"). "" when raw names
// no origin, or holds a placeholder that is not a whole host label of it (a path
// placeholder does not count: an origin has no path).
func OriginPatternOf(raw string) string {
	if !strings.ContainsAny(raw, "{}") {
		return OriginOf(raw)
	}
	i := strings.Index(raw, "://")
	if i < 0 {
		return ""
	}
	end := len(raw)
	if j := strings.IndexAny(raw[i+3:], "/?#"); j >= 0 {
		end = i + 3 + j
	}
	authority := raw[:end]
	if strings.Contains(authority, labelMarker) {
		return ""
	}
	sub := placeholderInHost.ReplaceAllString(authority, labelMarker)
	if strings.ContainsAny(sub, "{}") {
		return ""
	}
	o := OriginOf(sub)
	if o == "" {
		return ""
	}
	host := o[strings.Index(o, "://")+3 : strings.LastIndexByte(o, ':')]
	labels := strings.Split(host, ".")
	for k, l := range labels {
		switch {
		case l == labelMarker:
			labels[k] = patternLabel
		case strings.Contains(l, labelMarker):
			return "" // part of a label: never a pattern
		}
	}
	return o[:strings.Index(o, "://")+3] + strings.Join(labels, ".") + o[strings.LastIndexByte(o, ':'):]
}

// NewOriginPatterns is NewOrigins for URLs that may hold placeholder host labels: their
// origins or origin patterns (OriginPatternOf), canonical, sorted, distinct, never nil.
func NewOriginPatterns(urls ...string) Origins {
	out := Origins{}
	for _, u := range urls {
		if o := OriginPatternOf(u); o != "" && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	slices.Sort(out)
	return out
}

// MatchOrigin reports whether origin (canonical, OriginOf) is pattern or fits it: same
// scheme, port and number of host labels, each "{}" label of the pattern one DNS label
// of origin, every other label equal.
func MatchOrigin(pattern, origin string) bool {
	if origin == "" {
		return false
	}
	if pattern == origin {
		return true
	}
	if !strings.Contains(pattern, patternLabel) || strings.Contains(origin, "{") {
		return false
	}
	ps, ph, pp, ok1 := splitOrigin(pattern)
	os, oh, op, ok2 := splitOrigin(origin)
	if !ok1 || !ok2 || ps != os || pp != op {
		return false
	}
	pl, ol := strings.Split(ph, "."), strings.Split(oh, ".")
	if len(pl) != len(ol) {
		return false
	}
	for k := range pl {
		if pl[k] == patternLabel {
			if !dnsLabel.MatchString(ol[k]) {
				return false
			}
		} else if pl[k] != ol[k] {
			return false
		}
	}
	return true
}

// splitOrigin splits a canonical origin "scheme://host:port".
func splitOrigin(o string) (scheme, host, port string, ok bool) {
	i := strings.Index(o, "://")
	j := strings.LastIndexByte(o, ':')
	if i < 0 || j <= i+3 || strings.HasPrefix(o[i+3:], "[") {
		return "", "", "", false
	}
	return o[:i], o[i+3 : j], o[j+1:], true
}

// Package webhookverify checks the signature a provider puts on the webhooks it sends
// (Stripe, GitHub, Slack, Shopify, Twilio, Zendesk, HubSpot v3, Intercom, Linear, Square,
// ...), as a catalog entry declares it: a Scheme names the MAC (HMAC-SHA256, or HMAC-SHA1
// where a provider still uses it), the content it covers (a template over the raw body,
// the timestamp, the URL called, the method, the form parameters), the header that carries
// it and its encoding, where the timestamp is and how old it may be, and where the
// provider's event id is. Verify compares in constant time on the raw bytes (RFC 2104
// MACs; never a re-serialized body) and returns the digest of the signed content, which
// the caller records to refuse a replay within the scheme's window.
//
// The incoming side of the proxy's webhooks; the outgoing side (the proxy's own envelope)
// is internal/webhooksig. docs/providers.md lists the catalog's schemes.
package webhookverify

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Scheme is a provider's webhook signature scheme as a catalog entry declares it (the
// "webhook:" block of oauthflow/catalog/*.yaml). It holds no secret.
type Scheme struct {
	// Algorithm is the MAC: "hmac-sha256" or "hmac-sha1".
	Algorithm string `yaml:"algorithm" json:"algorithm"`
	// SignatureHeader carries the signature (X-Hub-Signature-256).
	SignatureHeader string `yaml:"signature_header" json:"signature_header"`
	// SignatureFormat is "" (the header value, after Prefix, is one signature) or "kv"
	// (comma-separated key=value pairs: SignatureKey names the signatures, one or more,
	// and the timestamp may be one of the pairs: Stripe's "t=..,v1=..,v1=..").
	SignatureFormat string `yaml:"signature_format,omitempty" json:"signature_format,omitempty"`
	SignatureKey    string `yaml:"signature_key,omitempty" json:"signature_key,omitempty"`
	// Prefix precedes the encoded signature ("sha256=", "v0=", "sha1=").
	Prefix string `yaml:"prefix,omitempty" json:"prefix,omitempty"`
	// Encoding of the signature: "hex" or "base64".
	Encoding string `yaml:"encoding" json:"encoding"`
	// Signed is the signed content as a template of {body} (the raw body), {timestamp}
	// (as sent), {url} (the URL the provider called, query included), {method} and
	// {params} (the form-encoded body's parameters sorted by name, each name followed by
	// its value: Twilio) and literal text: "{timestamp}.{body}", "v0:{timestamp}:{body}".
	Signed string `yaml:"signed" json:"signed"`
	// Timestamp is where the signing time is: "header:<name>", "kv:<key>" (a pair of the
	// signature header) or "json:<field>" (a top-level field of the JSON body); "" when
	// the scheme has none.
	Timestamp string `yaml:"timestamp,omitempty" json:"timestamp,omitempty"`
	// TimestampFormat: "unix" (seconds, the default), "unix_ms" or "rfc3339".
	TimestampFormat string `yaml:"timestamp_format,omitempty" json:"timestamp_format,omitempty"`
	// Tolerance is how far the timestamp may be from now (a Go duration, "5m"); required
	// with Timestamp. A verified delivery is remembered this long to refuse its replay.
	Tolerance string `yaml:"tolerance,omitempty" json:"tolerance,omitempty"`
	// ReplayWindow is how long a verified delivery of a scheme without a timestamp is
	// remembered to refuse its replay (default 72h).
	ReplayWindow string `yaml:"replay_window,omitempty" json:"replay_window,omitempty"`
	// EventID is where the provider's event id is: "header:<name>" or "json:<field>"; ""
	// when it has none.
	EventID string `yaml:"event_id,omitempty" json:"event_id,omitempty"`
	// DocsURL is the provider's documentation of the scheme.
	DocsURL string `yaml:"docs_url,omitempty" json:"docs_url,omitempty"`
}

// DefaultReplayWindow is ReplayWindow's default.
const DefaultReplayWindow = 72 * time.Hour

// MaxBody is the largest webhook body the proxy verifies (a larger one is refused before
// any MAC is computed). Providers cap theirs well below it (GitHub 25 MB is the outlier;
// Stripe, Slack, Shopify send a few KiB).
const MaxBody = 1 << 20

// ErrInvalidScheme is wrapped by every error of Validate.
var ErrInvalidScheme = errors.New("webhookverify: invalid scheme")

var placeholders = []string{"{body}", "{timestamp}", "{url}", "{method}", "{params}"}

// Validate checks a scheme strictly: known algorithm, encoding, format and locations, a
// template of known placeholders that covers the body (or the form parameters), a
// timestamp exactly when the template signs one, and a tolerance with it.
func (s Scheme) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrInvalidScheme, fmt.Sprintf(f, a...)) }
	if _, err := s.newMAC(); err != nil {
		return err
	}
	if s.SignatureHeader == "" || http.CanonicalHeaderKey(s.SignatureHeader) == "" {
		return bad("signature_header is required")
	}
	switch s.SignatureFormat {
	case "":
		if s.SignatureKey != "" {
			return bad("signature_key needs signature_format kv")
		}
	case "kv":
		if s.SignatureKey == "" {
			return bad("signature_format kv needs signature_key")
		}
	default:
		return bad("signature_format %q", s.SignatureFormat)
	}
	if s.Encoding != "hex" && s.Encoding != "base64" {
		return bad("encoding %q (hex or base64)", s.Encoding)
	}
	rest := s.Signed
	for _, p := range placeholders {
		rest = strings.ReplaceAll(rest, p, "")
	}
	if strings.ContainsAny(rest, "{}") {
		return bad("signed %q: unknown placeholder", s.Signed)
	}
	if !strings.Contains(s.Signed, "{body}") && !strings.Contains(s.Signed, "{params}") {
		return bad("signed %q covers neither {body} nor {params}", s.Signed)
	}
	if (s.Timestamp != "") != strings.Contains(s.Signed, "{timestamp}") && !strings.HasPrefix(s.Timestamp, "json:") {
		return bad("timestamp and {timestamp} go together (a json: timestamp is inside the signed body)")
	}
	if s.Timestamp != "" {
		if err := checkLocation(s.Timestamp, s.SignatureFormat == "kv"); err != nil {
			return bad("timestamp: %v", err)
		}
		switch s.TimestampFormat {
		case "", "unix", "unix_ms", "rfc3339":
		default:
			return bad("timestamp_format %q", s.TimestampFormat)
		}
		if d, err := time.ParseDuration(s.Tolerance); err != nil || d <= 0 || d > time.Hour {
			return bad("tolerance %q (a duration up to 1h)", s.Tolerance)
		}
	} else if s.Tolerance != "" || s.TimestampFormat != "" {
		return bad("tolerance and timestamp_format need a timestamp")
	}
	if s.ReplayWindow != "" {
		if s.Timestamp != "" {
			return bad("replay_window is for schemes without a timestamp (the tolerance bounds the others)")
		}
		if d, err := time.ParseDuration(s.ReplayWindow); err != nil || d <= 0 || d > 30*24*time.Hour {
			return bad("replay_window %q (a duration up to 720h)", s.ReplayWindow)
		}
	}
	if s.EventID != "" {
		if err := checkLocation(s.EventID, false); err != nil {
			return bad("event_id: %v", err)
		}
	}
	return nil
}

func checkLocation(loc string, kv bool) error {
	kind, name, ok := strings.Cut(loc, ":")
	switch {
	case !ok || name == "":
		return fmt.Errorf("%q: want header:<name>, json:<field>%s", loc, map[bool]string{true: " or kv:<key>"}[kv])
	case kind == "header", kind == "json", kind == "kv" && kv:
		return nil
	}
	return fmt.Errorf("%q: unknown location", loc)
}

// tolerance is the scheme's timestamp tolerance (0 without a timestamp).
func (s Scheme) tolerance() time.Duration {
	d, _ := time.ParseDuration(s.Tolerance)
	return d
}

// RememberFor is how long a verified delivery must be remembered to refuse its replay:
// the timestamp tolerance on each side of now, or the replay window.
func (s Scheme) RememberFor() time.Duration {
	if s.Timestamp != "" {
		return 2 * s.tolerance()
	}
	if d, err := time.ParseDuration(s.ReplayWindow); err == nil {
		return d
	}
	return DefaultReplayWindow
}

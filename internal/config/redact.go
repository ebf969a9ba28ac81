package config

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
)

// String is a one-line summary for humans, secrets redacted.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("config{")
	for i, kv := range c.pairs() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		if kv[1] == "" || strings.ContainsAny(kv[1], " \t\"") {
			b.WriteString(strconv.Quote(kv[1]))
		} else {
			b.WriteString(kv[1])
		}
	}
	b.WriteByte('}')
	return b.String()
}

// Format makes every verb, %+v and %#v included, print String: the struct's own
// fields (a database URL with a password) never reach fmt's reflection.
func (c Config) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue is the start-up log line's group, secrets redacted.
func (c Config) LogValue() slog.Value {
	pairs := c.pairs()
	attrs := make([]slog.Attr, 0, len(pairs))
	for _, kv := range pairs {
		attrs = append(attrs, slog.String(kv[0], kv[1]))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON writes the same redacted view as LogValue.
func (c Config) MarshalJSON() ([]byte, error) {
	m := map[string]string{}
	for _, kv := range c.pairs() {
		m[kv[0]] = kv[1]
	}
	return json.Marshal(m)
}

var _ slog.LogValuer = Config{}

// pairs renders every setting (short key, redacted value) in table order.
func (c Config) pairs() [][2]string {
	settings := Settings()
	out := make([][2]string, 0, len(settings))
	for _, s := range settings {
		out = append(out, [2]string{s.Key, s.show(&c)})
	}
	return out
}

// redactURI replaces the password of RFC 3986 userinfo and the values of sensitive
// parameters (?password=, pkcs11 pin-value=) with "xxxxx". It works on strings that do
// not parse as URLs too.
func redactURI(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		start := i + 3
		end := len(s)
		if j := strings.IndexAny(s[start:], "?#"); j >= 0 {
			end = start + j
		}
		if at := strings.LastIndex(s[start:end], "@"); at >= 0 {
			userinfo := s[start : start+at]
			if colon := strings.Index(userinfo, ":"); colon >= 0 {
				s = s[:start+colon+1] + "xxxxx" + s[start+at:]
			}
		}
	}
	var b strings.Builder
	for {
		j := strings.IndexAny(s, "?&;")
		seg := s
		if j >= 0 {
			seg = s[:j]
		}
		if k, _, ok := strings.Cut(seg, "="); ok && isSensitive(k) {
			seg = k + "=xxxxx"
		}
		b.WriteString(seg)
		if j < 0 {
			break
		}
		b.WriteByte(s[j])
		s = s[j+1:]
	}
	return b.String()
}

func isSensitive(key string) bool {
	// The first segment of a pkcs11 URI is "pkcs11:attr=…".
	if _, attr, ok := strings.Cut(key, ":"); ok && !strings.Contains(attr, "/") {
		key = attr
	}
	// URI parameters whose values are secrets.
	for _, p := range []string{"password", "sslpassword", "pin-value", "secret", "secret_key", "secret_access_key", "client_secret"} {
		if strings.EqualFold(key, p) {
			return true
		}
	}
	return false
}

func cleanPath(p string) string { return filepath.Clean(p) }

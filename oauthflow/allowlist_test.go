package oauthflow

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateRedirectURLAccepts(t *testing.T) {
	tests := []struct {
		raw      string
		loopback bool // needs allowHTTPLoopback
	}{
		{raw: "https://app.example.com/cb"},
		{raw: "https://app.example.com/"},
		{raw: "https://proxy.example.com/v1/oauth/callback"},
		{raw: "https://app.example.com:8443/integrations/done"},
		{raw: "https://app.example.com/cb?tenant=acme&x=1"},
		{raw: "https://app.example.com/cb?"},
		{raw: "https://app.example.com/a%20b/c%2Fd"},
		{raw: "https://app.example.com/@evil.com"}, // '@' in the path is just a path
		{raw: "https://xn--bcher-kva.example/cb"},  // punycode IDN
		{raw: "https://localhost/cb"},
		{raw: "https://127.0.0.1/cb"},
		{raw: "https://[::1]:8443/cb"},
		{raw: "https://[2001:db8::1]/cb"},
		{raw: "https://intranet/cb"},
		{raw: "https://1e100.net/cb"},
		{raw: "http://localhost:3000/cb", loopback: true},
		{raw: "http://127.0.0.1/cb", loopback: true},
		{raw: "http://[::1]:8080/v1/oauth/callback", loopback: true},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			require.NoError(t, ValidateRedirectURL(tc.raw, true))
			err := ValidateRedirectURL(tc.raw, false)
			if tc.loopback {
				require.ErrorIs(t, err, ErrInvalidRedirectURL)
			} else {
				require.NoError(t, err)
			}
		})
	}
}

// Open-redirect and parser-confusion payloads, most from public advisories and bug bounty
// write-ups (userinfo, backslash, encoded separators, IDN dots, scheme tricks).
func TestValidateRedirectURLRejects(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		reason string
	}{
		{"empty", "", "empty URL"},
		{"userinfo", "https://good.com@evil.com/cb", "userinfo"},
		{"userinfo with password", "https://good.com:pw@evil.com/cb", "userinfo"},
		{"backslash userinfo", `https://evil.com\@good.com/cb`, "backslash"},
		{"backslash path", `https://good.com\.evil.com/cb`, "backslash"},
		{"encoded slash in userinfo", "https://good.com%2f@evil.com/cb", "userinfo"},
		{"encoded slash in host", "https://evil.com%2fgood.com/cb", "percent-encoding in host"},
		{"encoded dot in host", "https://good%2ecom/cb", "percent-encoding in host"},
		{"scheme slash backslash", `https:/\evil.com/cb`, "backslash"},
		{"scheme single slash", "https:/evil.com/cb", "not an absolute https URL"},
		{"scheme no slash", "https:evil.com/cb", "not an absolute https URL"},
		{"protocol relative", "//evil.com/cb", "not an absolute https URL"},
		{"triple slash", "https:///evil.com/cb", "empty host"},
		{"relative path", "/cb", "not an absolute https URL"},
		{"javascript", "javascript:alert(1)//https://good.com/cb", "not an absolute https URL"},
		{"javascript uppercase", "JAVASCRIPT:alert(1)", "not an absolute https URL"},
		{"data", "data:text/html;base64,PHNjcmlwdD4=", "not an absolute https URL"},
		{"script tag", "https://good.com/<script>alert(1)</script>", "character not allowed"},
		{"uppercase scheme", "HTTPS://good.com/cb", "not an absolute https URL"},
		{"ftp", "ftp://good.com/cb", "not an absolute https URL"},
		{"leading space", " https://good.com/cb", "whitespace"},
		{"tab in scheme", "ht\ttps://good.com/cb", "whitespace"},
		{"newline", "https://good.com/cb\n", "whitespace"},
		{"CRLF injection", "https://good.com/cb%0d%0aLocation:%20https://evil.com\r\n", "whitespace"},
		{"NUL", "https://good.com\x00.evil.com/cb", "control character"},
		{"DEL", "https://good.com/cb\x7f", "control character"},
		{"fragment", "https://good.com/cb#x", "fragment"},
		{"empty fragment", "https://good.com/cb#", "fragment"},
		{"fragment hides host", "https://evil.com#@good.com/cb", "fragment"},
		{"wildcard host", "https://*.good.com/cb", "wildcard"},
		{"wildcard path", "https://good.com/*", "wildcard"},
		{"ideographic full stop", "https://good\u3002com/cb", "IDN full-width dot"},
		{"fullwidth full stop", "https://evil\uff0ecom/cb", "IDN full-width dot"},
		{"halfwidth ideographic full stop", "https://evil\uff61com/cb", "IDN full-width dot"},
		{"unicode host", "https://bücher.example/cb", "non-ASCII"},
		{"unicode path", "https://good.com/caf\u00e9", "non-ASCII"},
		{"right-to-left override", "https://good.com/\u202ecb", "non-ASCII"},
		{"uppercase host", "https://Good.com/cb", "lowercase"},
		{"trailing dot", "https://good.com./cb", "trailing dot"},
		{"leading dot", "https://.good.com/cb", "empty label"},
		{"double dot", "https://good..com/cb", "empty label"},
		{"underscore host", "https://good_host.com/cb", "invalid character in host"},
		{"hyphen label", "https://-good.com/cb", "hyphen"},
		{"empty host with port", "https://:443/cb", "empty host"},
		{"empty port", "https://good.com:/cb", "empty port"},
		{"default port", "https://good.com:443/cb", "default port"},
		{"default http port", "http://localhost:80/cb", "default port"},
		{"port leading zero", "https://good.com:08443/cb", "invalid port"},
		{"port out of range", "https://good.com:70000/cb", "invalid port"},
		{"port zero", "https://good.com:0/cb", "invalid port"},
		{"no path", "https://good.com", "path required"},
		{"no path with query", "https://good.com?next=/cb", "path required"},
		{"dot segment", "https://good.com/a/../cb", "dot segment"},
		{"encoded dot segment", "https://good.com/a/%2e%2e/cb", "dot segment"},
		{"single dot segment", "https://good.com/./cb", "dot segment"},
		{"short IPv4", "https://127.1/cb", "IPv4"},
		{"hex IPv4", "https://0x7f.0.0.1/cb", "IPv4"},
		{"octal IPv4", "https://0177.0.0.1/cb", "IPv4"},
		{"decimal IPv4", "https://2130706433/cb", "IPv4"},
		{"IPv6 uncompressed", "https://[0:0:0:0:0:0:0:1]/cb", "IPv6"},
		{"IPv6 uppercase", "https://[2001:DB8::1]/cb", "IPv6"},
		{"IPv6 zone", "https://[fe80::1%25eth0]/cb", "percent-encoding in host"},
		{"IPv4-mapped IPv6", "https://[::ffff:127.0.0.1]/cb", "IPv6"},
		{"http non loopback", "http://good.com/cb", "plain http"},
		{"http loopback lookalike", "http://localhost.evil.com/cb", "plain http"},
		{"http other loopback", "http://127.0.0.2/cb", "plain http"},
		{"quote", `https://good.com/cb?x="`, "character not allowed"},
		{"angle bracket", "https://good.com/<script>", "character not allowed"},
		{"pipe", "https://good.com/a|b", "character not allowed"},
		{"brace", "https://good.com/{x}", "character not allowed"},
		{"caret", "https://good.com/a^b", "character not allowed"},
		{"backtick", "https://good.com/a`b", "character not allowed"},
		{"apostrophe", "https://good.com/cb?x='", "character not allowed"},
		{"bad percent", "https://good.com/cb?x=%zz", "percent-encoding"},
		{"truncated percent", "https://good.com/cb%2", "percent-encoding"},
		{"bracket in host", "https://good.com]/cb", "malformed"},
		{"too long", "https://good.com/" + strings.Repeat("a", MaxRedirectURLLength), "too long"},
		{"label too long", "https://" + strings.Repeat("a", 64) + ".com/cb", "host label too long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateRedirectURL(tc.raw, true)
			require.ErrorIs(t, err, ErrInvalidRedirectURL)
			require.Contains(t, err.Error(), tc.reason)
		})
	}
}

func TestValidateRedirectURLNeverEchoesQuery(t *testing.T) {
	const secret = "code=SECRETVALUE123"
	for _, raw := range []string{
		"https://good.com/cb#?" + secret,
		"https://Good.com/cb?" + secret,
		"http://good.com/cb?" + secret,
		"https://good.com:443/cb?" + secret,
		"https://good.com/cb?" + secret + "&x=\"",
		"https://good.com/cb?" + secret + "%zz",
		"https://good.com:99999/cb?" + secret, // url.Parse fails: its error would repeat the URL
		"https://good.com/a/../cb?" + secret,
	} {
		err := ValidateRedirectURL(raw, false)
		require.ErrorIs(t, err, ErrInvalidRedirectURL, raw)
		require.NotContains(t, err.Error(), "SECRETVALUE123")
		require.NotContains(t, err.Error(), "good.com")
	}
}

func TestMatchAllowlist(t *testing.T) {
	allowlist := []string{
		"https://good.com/cb",
		"https://app.example.com/integrations/done?tenant=acme",
		"http://localhost:3000/cb",
		"https://good.com/bad#frag", // invalid entries can never be matched
	}
	tests := []struct {
		raw  string
		want bool
	}{
		{"https://good.com/cb", true},
		{"https://app.example.com/integrations/done?tenant=acme", true},
		{"http://localhost:3000/cb", true},
		{"https://good.com/bad#frag", false},
		{"", false},
		{"https://good.com/cb/", false},
		{"https://good.com/c", false},
		{"https://good.com/cbx", false},
		{"https://good.com/cb?", false},
		{"https://good.com/cb?x=1", false},
		{"https://good.com/CB", false},
		{"https://GOOD.com/cb", false},
		{"HTTPS://good.com/cb", false},
		{"https://good.com:443/cb", false},
		{"https://good.com:8443/cb", false},
		{"http://good.com/cb", false},
		{"https://good.com.evil.com/cb", false},
		{"https://evil.com/https://good.com/cb", false},
		{"https://evilgood.com/cb", false},
		{"https://good.com./cb", false},
		{"https://good.com/cb#", false},
		{"https://good.com@evil.com/cb", false},
		{`https://good.com\@evil.com/cb`, false},
		{"https://good.com/cb\t", false},
		{"https://good.com/./cb", false},
		{"https://good.com/%63b", false},
		{"https://app.example.com/integrations/done?tenant=acme&tenant=evil", false},
		{"https://app.example.com/integrations/done?tenant=ACME", false},
		{"http://localhost:3000/cb/../cb", false},
		{"http://127.0.0.1:3000/cb", false},
		{"https://localhost:3000/cb", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.raw), func(t *testing.T) {
			got, ok := MatchAllowlist(tc.raw, allowlist)
			require.Equal(t, tc.want, ok)
			if tc.want {
				require.Equal(t, tc.raw, got)
			} else {
				require.Empty(t, got)
			}
		})
	}
	_, ok := MatchAllowlist("https://good.com/cb", nil)
	require.False(t, ok)
}

func TestValidateAllowlist(t *testing.T) {
	require.NoError(t, ValidateAllowlist(nil, false))
	require.NoError(t, ValidateAllowlist([]string{"https://a.example/cb", "https://b.example/cb"}, false))

	err := ValidateAllowlist([]string{"https://a.example/cb", "https://a.example/cb"}, false)
	require.ErrorIs(t, err, ErrInvalidRedirectURL)
	require.Contains(t, err.Error(), "entry 1")
	require.Contains(t, err.Error(), "duplicate")

	err = ValidateAllowlist([]string{"https://a.example/cb", "http://localhost/cb"}, false)
	require.ErrorIs(t, err, ErrInvalidRedirectURL)
	require.Contains(t, err.Error(), "entry 1")
	require.NoError(t, ValidateAllowlist([]string{"https://a.example/cb", "http://localhost/cb"}, true))

	many := make([]string, MaxAllowlistEntries+1)
	for i := range many {
		many[i] = fmt.Sprintf("https://a.example/cb%d", i)
	}
	require.ErrorIs(t, ValidateAllowlist(many, false), ErrInvalidRedirectURL)
	require.NoError(t, ValidateAllowlist(many[:MaxAllowlistEntries], false))
}

// FuzzMatchAllowlist: whatever MatchAllowlist accepts is byte-for-byte an allowlisted URL
// that passes ValidateRedirectURL, and whatever ValidateRedirectURL accepts has the
// properties the allowlist relies on. Seeds: testdata/fuzz/FuzzMatchAllowlist.
func FuzzMatchAllowlist(f *testing.F) {
	f.Add("https://good.com/cb", "https://good.com/cb")
	f.Add("https://good.com@evil.com/cb", "https://good.com/cb")
	f.Add(`https://evil.com\@good.com/cb`, "https://good.com/cb")
	f.Add("https://good.com%2f@evil.com/cb", "https://good.com/cb")
	f.Add("http://localhost:3000/cb", "http://localhost:3000/cb")
	f.Add("https://good\u3002com/cb", "https://good\u3002com/cb")
	f.Fuzz(func(t *testing.T, raw, entry string) {
		allowlist := []string{entry, "https://app.example.com/integrations/done"}
		got, ok := MatchAllowlist(raw, allowlist)
		if ok {
			if got != raw || !slices.Contains(allowlist, raw) {
				t.Fatalf("matched %q for %q, not an exact allowlist entry", got, raw)
			}
		} else if got != "" {
			t.Fatalf("no match but returned %q", got)
		}
		if ValidateRedirectURL(raw, false) == nil && ValidateRedirectURL(raw, true) != nil {
			t.Fatalf("%q valid without loopback but invalid with it", raw)
		}
		if ValidateRedirectURL(raw, true) != nil {
			if ok {
				t.Fatalf("matched %q which does not validate", raw)
			}
			return
		}
		// Properties of every accepted URL.
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted %q that url.Parse rejects: %v", raw, err)
		}
		if u.String() != raw {
			t.Fatalf("accepted non-canonical %q (reads back as %q)", raw, u.String())
		}
		host := u.Hostname()
		switch {
		case u.Scheme != "https" && u.Scheme != "http",
			u.Scheme == "http" && host != "localhost" && host != "127.0.0.1" && host != "::1",
			u.User != nil, u.Opaque != "", u.Fragment != "", host == "",
			host != strings.ToLower(host), strings.HasSuffix(host, "."),
			strings.ContainsAny(raw, "#\\* \t\r\n\"<>'`{}|^"),
			strings.ContainsFunc(raw, func(r rune) bool { return r < 0x20 || r >= 0x7f }):
			t.Fatalf("accepted %q", raw)
		}
		// A second parse of the same bytes gives the same host: nothing is ambiguous.
		u2, err := url.Parse(u.String())
		if err != nil || u2.Host != u.Host || u2.Path != u.Path || u2.RawQuery != u.RawQuery {
			t.Fatalf("re-parse of %q differs", raw)
		}
	})
}

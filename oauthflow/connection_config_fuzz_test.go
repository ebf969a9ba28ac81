package oauthflow

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/publicsuffix"

	"github.com/authpipe/authpipe-proxy/vault"
)

// FuzzExpand: whatever template, pattern and value Validate and Expand accept, the filled
// token URL stays in the template's declared registrable domain (the fixed labels after
// the last host placeholder, by the public suffix list), its host differs from the
// template's only in the placeholder labels, its path has the template's number of
// segments, and its origin fits the template's origin pattern (the client secret's
// binding). A template without host placeholders keeps its origin exactly.
func FuzzExpand(f *testing.F) {
	f.Add("https://{t}.idp.example.com/oauth/token", "acme", "[a-z0-9-]{1,63}")
	f.Add("https://{t}.myshopify.com/admin/oauth/access_token", "shop-1", "[a-z0-9-]+")
	f.Add("https://login.example.com/{t}/oauth2/v2.0/token", "contoso.onmicrosoft.com", ".+")
	f.Add("https://{t}.co.uk/token", "evil", ".*")
	f.Add("https://{t}.{t}.example.com/token", "a", "a")
	f.Add("https://{t}.example.com:8443/{t}/token", "x..y", ".*")
	f.Add("https://api.example.com/{t}", "..", ".*")
	f.Add("https://{t}.github.io/token", "evil", ".*")
	f.Fuzz(func(t *testing.T, tmpl, value, pattern string) {
		p := Provider{Name: "f", DisplayName: "F", AuthMode: AuthModeOAuth2, AuthorizationURL: "https://auth.example.com/a",
			TokenURL: tmpl, TokenAuthMethod: ClientSecretBasic, ConnectionConfig: []ConfigParam{{Name: "t", Pattern: pattern}}}
		if p.Validate() != nil {
			return
		}
		e, err := p.Expand(map[string]string{"t": value})
		if err != nil {
			if strings.Contains(err.Error(), value) && value != "" && len(value) > 3 {
				t.Fatalf("error repeats the value: %v", err)
			}
			return
		}
		tu, err1 := url.Parse(SampleURL(tmpl))
		fu, err2 := url.Parse(e.TokenURL)
		if err1 != nil || err2 != nil {
			t.Fatalf("accepted URL does not parse: %q", e.TokenURL)
		}
		tl, fl := strings.Split(tu.Hostname(), "."), strings.Split(fu.Hostname(), ".")
		if len(tl) != len(fl) || tu.Port() != fu.Port() || tu.Scheme != fu.Scheme {
			t.Fatalf("filled host %q does not keep the template's shape %q", fu.Host, tmpl)
		}
		last := -1
		for i, l := range strings.Split(authorityHost(tmpl), ".") {
			if strings.HasPrefix(l, "{") {
				last = i
			} else if fl[i] != l {
				t.Fatalf("fixed label %q changed to %q", l, fl[i])
			}
		}
		if strings.Count(tu.EscapedPath(), "/") != strings.Count(fu.EscapedPath(), "/") {
			t.Fatalf("filled path %q has another number of segments than %q", fu.EscapedPath(), tmpl)
		}
		if slices.Contains(strings.Split(fu.EscapedPath(), "/"), "..") {
			t.Fatalf("dot segment in %q", fu.EscapedPath())
		}
		opat := vault.OriginPatternOf(tmpl)
		if !vault.MatchOrigin(opat, vault.OriginOf(e.TokenURL)) {
			t.Fatalf("filled origin %q does not fit the pattern %q", vault.OriginOf(e.TokenURL), opat)
		}
		if last < 0 {
			if vault.OriginOf(e.TokenURL) != opat {
				t.Fatalf("origin moved without a host placeholder")
			}
			return
		}
		suffix := strings.Join(fl[last+1:], ".")
		declared := RegistrableDomain(suffix)
		got, err := publicsuffix.EffectiveTLDPlusOne(fu.Hostname())
		if err != nil || (got != declared && !strings.HasSuffix(got, "."+declared)) {
			t.Fatalf("filled host %q has registrable domain %q, outside %q", fu.Hostname(), got, declared)
		}
	})
}

func authorityHost(raw string) string {
	a, _ := splitAuthority(raw)
	a = a[strings.Index(a, "://")+3:]
	if i := strings.LastIndexByte(a, ':'); i >= 0 {
		a = a[:i]
	}
	return a
}

package proxy_test

import (
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/proxy"
)

func TestConfinePath(t *testing.T) {
	ok := []struct{ base, suffix, want string }{
		{"/v3", "/repos/a/b", "/v3/repos/a/b"},
		{"/v3/", "/repos/a/b/", "/v3/repos/a/b/"},
		{"", "/user", "/user"},
		{"", "", "/"},
		{"/api", "", "/api"},
		{"/v1", "/files/a%20b.txt", "/v1/files/a%20b.txt"},
		{"/v1", "/projects/p:run", "/v1/projects/p:run"},
		{"/v1", "/a/...", "/v1/a/..."},
		{"/v1", "/a/..b/.c", "/v1/a/..b/.c"},
		{"/v1", "/100%25", "/v1/100%25"}, // a literal percent sign, once encoded
	}
	for _, tc := range ok {
		t.Run("ok "+tc.suffix, func(t *testing.T) {
			got, err := proxy.ConfinePath(tc.base, tc.suffix)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	escapes := []string{
		"/..", "/../admin", "/a/../../etc/passwd", "/./a", "/a/.",
		"/%2e%2e/admin", "/%2E%2E/admin", "/.%2e/admin", "/%2e./admin", "/%2e/a",
		"/a%2f..%2f..%2fadmin", "/a%2F..", "/..%2fadmin",
		"/a%5c..%5cadmin", "/a\\..\\admin", "/..\\admin",
		"/%252e%252e/admin", "/%252E%252E/admin", "/a%252f..", "/%25%32%65%25%32%65/x",
		"/..;/admin", "/a/..;jsessionid=1/b", "/.;x/a",
		"//evil.example.com/x", "/a//b",
		"/a%00b", "/a%0d%0aHost:%20evil", "/a%7f",
		"/a%zz", "/a%2",
		"no-leading-slash",
	}
	for _, s := range escapes {
		t.Run("refused "+s, func(t *testing.T) {
			_, err := proxy.ConfinePath("/v3", s)
			require.Error(t, err)
		})
	}
}

// FuzzConfinePath: whatever the caller sends, an accepted path stays under the base path
// however many times the provider decodes it and however it resolves dot segments.
func FuzzConfinePath(f *testing.F) {
	for _, s := range []string{"/a/b", "/..", "/%2e%2e/x", "/a%2f..", "/%252e%252e", "/a\\b", "//x", "/a/", "", "/..;/a", "/;../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, suffix string) {
		for _, base := range []string{"", "/v3", "/api/v1/"} {
			got, err := proxy.ConfinePath(base, suffix)
			if err != nil {
				continue
			}
			root := strings.TrimRight(base, "/")
			require.True(t, got == root || got == "/" && root == "" || strings.HasPrefix(got, root+"/"), "got %q", got)
			require.NotContains(t, got, "\\")
			require.False(t, strings.HasPrefix(got, "//"), "got %q", got)
			// Decode once and twice (a naive or double-decoding upstream), and treat ";" as
			// a separator (Tomcat): the cleaned path never leaves the base.
			once, err := url.PathUnescape(got)
			require.NoError(t, err)
			views := []string{got, once}
			if twice, err := url.PathUnescape(once); err == nil {
				views = append(views, twice)
			}
			for _, p := range views {
				p = strings.ReplaceAll(p, "\\", "/")
				for _, v := range []string{p, strings.ReplaceAll(p, ";", "/")} {
					clean := path.Clean("/" + v)
					require.True(t, root == "" || clean == root || strings.HasPrefix(clean, root+"/"),
						"%q decodes to %q, outside %q", got, clean, root)
				}
			}
		}
	})
}

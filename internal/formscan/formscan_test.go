package formscan_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/formscan"
)

// Names that a server could read as access_token, and names it could not.
var (
	accessTokenForms = []string{
		"access_token=x", "ACCESS_TOKEN=x", "Access_Token=x", "access_token", "access_token=",
		"a=1&access_token=x", "access_token=x&a=1", "a=1;access_token=x", "&&access_token=x",
		"access%5Ftoken=x", "access%5ftoken=x", "%61ccess_token=x", "%41CCESS%5FTOKEN=x",
		"%61%63%63%65%73%73%5F%74%6F%6B%65%6E=x",
		"acce%C5%BFs_token=x",                                           // ſ folds to s
		"access_to%E2%84%AAen=x",                                        // the Kelvin sign folds to k
		"access_token%zz=x", "access_token%=x", "x%=1&access_token%2=y", // malformed escapes
	}
	otherForms = []string{
		"", "a=1", "my_access_token_count=1", "access_tokens=1", "access_token_x=1", "xaccess_token=1",
		"q=access_token", "q=access_token=1", "access+token=1", "access%20token=1", "access%255Ftoken=1",
		"access-token=1", "accesstoken=1", "access=token", strings.Repeat("a", 100) + "=1",
		strings.Repeat("%61", 40) + "=1",
	}
)

func TestFormHasAccessToken(t *testing.T) {
	for _, f := range accessTokenForms {
		require.True(t, formscan.HasAccessToken(f), f)
		require.True(t, formscan.HasAccessToken([]byte(f)), f)
	}
	for _, f := range otherForms {
		require.False(t, formscan.HasAccessToken(f), f)
		require.False(t, formscan.HasAccessToken([]byte(f)), f)
	}
	// Every query of the hot path goes through it: no allocation.
	allocs := testing.AllocsPerRun(100, func() {
		_ = formscan.HasAccessToken("min_validity=300&my_access_token_count=1&%61ccess_tokem=2")
	})
	require.Zero(t, allocs)
}

// FuzzFormHasAccessToken: whenever Go's own form parser (url.ParseQuery, with '&' or with
// ';' as the separator) finds an access_token parameter, so does HasAccessToken; the
// string and []byte forms agree; nothing panics.
func FuzzFormHasAccessToken(f *testing.F) {
	for _, s := range append(append([]string(nil), accessTokenForms...), otherForms...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := formscan.HasAccessToken(s)
		require.Equal(t, got, formscan.HasAccessToken([]byte(s)))
		for _, form := range []string{s, strings.ReplaceAll(s, ";", "&")} {
			vals, _ := url.ParseQuery(form) // what it could parse, even if it reports an error
			for k := range vals {
				if strings.EqualFold(k, "access_token") {
					require.True(t, got, "url.ParseQuery found %q in %q", k, s)
				}
			}
		}
	})
}

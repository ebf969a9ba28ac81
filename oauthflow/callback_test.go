package oauthflow

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseCallback(t *testing.T) {
	c, err := ParseCallback(url.Values{"code": {"c0de"}, "state": {"st"}, "iss": {"https://i.example"}})
	require.NoError(t, err)
	require.Equal(t, Callback{Code: "c0de", State: "st", Iss: "https://i.example", HasIss: true}, c)
	require.NotContains(t, c.String(), "c0de")
	require.NotContains(t, c.String(), "st\"")

	c, err = ParseCallback(url.Values{"error": {"access_denied"}, "state": {"st"}})
	require.NoError(t, err)
	require.Equal(t, "access_denied", c.Error)
	require.False(t, c.HasIss)

	c, err = ParseCallback(url.Values{"code": {"c"}, "state": {"st"}, "iss": {""}})
	require.NoError(t, err)
	require.True(t, c.HasIss, "an empty iss is present, and will not match")

	for name, q := range map[string]url.Values{
		"repeated state": {"code": {"c"}, "state": {"a", "b"}},
		"repeated code":  {"code": {"c", "d"}, "state": {"a"}},
		"repeated iss":   {"code": {"c"}, "state": {"a"}, "iss": {"x", "y"}},
		"nothing":        {"state": {"a"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseCallback(q)
			require.ErrorIs(t, err, ErrMalformedCallback)
		})
	}
}

func TestCheckIssuer(t *testing.T) {
	p := Provider{Issuer: "https://login.example.com"}
	req := p
	req.RequireIss = true
	for name, tc := range map[string]struct {
		p    Provider
		c    Callback
		want error
	}{
		"equal":                   {p, Callback{Iss: "https://login.example.com", HasIss: true}, nil},
		"absent, not required":    {p, Callback{}, nil},
		"absent, required":        {req, Callback{}, ErrIssuerMissing},
		"other issuer":            {p, Callback{Iss: "https://attacker.example", HasIss: true}, ErrIssuerMismatch},
		"trailing slash":          {p, Callback{Iss: "https://login.example.com/", HasIss: true}, ErrIssuerMismatch},
		"case differs":            {p, Callback{Iss: "https://LOGIN.example.com", HasIss: true}, ErrIssuerMismatch},
		"empty iss":               {p, Callback{Iss: "", HasIss: true}, ErrIssuerMismatch},
		"no issuer configured":    {Provider{}, Callback{Iss: "https://x.example", HasIss: true}, nil},
		"required and equal":      {req, Callback{Iss: "https://login.example.com", HasIss: true}, nil},
		"required and mismatched": {req, Callback{Iss: "https://login.example.com.", HasIss: true}, ErrIssuerMismatch},
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckIssuer(tc.p, tc.c)
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func TestErrorCode(t *testing.T) {
	require.Equal(t, "access_denied", ErrorCode("access_denied"))
	require.Equal(t, "invalid_grant", ErrorCode("invalid_grant"))
	for _, s := range []string{"", "ACCESS_DENIED", "access_denied ", "<script>", "token=abc", "custom_error"} {
		require.Equal(t, ProviderErrorCode, ErrorCode(s), s)
	}
}

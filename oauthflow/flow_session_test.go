package oauthflow

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

func TestPickURL(t *testing.T) {
	list := []string{"https://app.example/cb", "https://app.example/cb2"}
	for _, tc := range []struct {
		name, requested string
		allowlist       []string
		want            string
		ok              bool
	}{
		{"empty request takes the first entry", "", list, list[0], true},
		{"empty request, empty list: none", "", nil, "", true},
		{"an exact entry", list[1], list, list[1], true},
		{"a prefix is not an entry", "https://app.example/c", list, "", false},
		{"an extension is not an entry", "https://app.example/cb/x", list, "", false},
		{"nothing matches an empty list", list[0], nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := pickURL(tc.requested, tc.allowlist)
			require.Equal(t, tc.ok, ok)
			if ok {
				require.Equal(t, tc.want, got)
			}
		})
	}
}

func TestCheckScopes(t *testing.T) {
	many := make([]string, 101)
	for i := range many {
		many[i] = "s"
	}
	for _, tc := range []struct {
		name   string
		scopes []string
		ok     bool
	}{
		{"none", nil, true},
		{"plain", []string{"read", "user:email", "https://www.googleapis.com/auth/drive"}, true},
		{"100 scopes", many[:100], true},
		{"101 scopes", many, false},
		{"empty scope", []string{""}, false},
		{"too long", []string{strings.Repeat("a", 257)}, false},
		{"space", []string{"a b"}, false},
		{"quote", []string{`a"`}, false},
		{"backslash", []string{`a\`}, false},
		{"control character", []string{"a\x7f"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkScopes(tc.scopes)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			var p *problem.Problem
			require.True(t, errors.As(err, &p))
			require.Equal(t, problem.ErrInvalidRequest.Code, p.Code)
		})
	}
}

package oauthflow

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
)

func basicPair(user, pass string) BasicCredential {
	return BasicCredential{Username: vault.NewSecret(user), Password: vault.NewSecret(pass)}
}

// fieldsOf returns the field names of a 400 invalid_request.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	var p *problem.Problem
	require.True(t, errors.As(err, &p), "%v", err)
	require.Equal(t, "invalid_request", p.Code)
	var out []string
	for _, f := range p.Errors {
		out = append(out, f.Field)
	}
	return out
}

func TestBasicCredentialCheck(t *testing.T) {
	long := strings.Repeat("p", MaxBasicPasswordLen)
	tests := []struct {
		name       string
		user, pass string
		bad        []string
	}{
		{"e-mail and API token", "ann@example.com", "ATATT3xFfGF0-token", nil},
		{"unicode, quotes, spaces, colon in password", "Zoë Ünal", `p"a\ss: w0rd é`, nil},
		{"longest", strings.Repeat("u", MaxBasicUsernameLen), long, nil},
		{"colon in username (RFC 7617)", "ann:admin", "pw", []string{"basic.username"}},
		{"empty username", "", "pw", []string{"basic.username"}},
		{"username too long", strings.Repeat("u", MaxBasicUsernameLen+1), "pw", []string{"basic.username"}},
		{"control character in username", "ann\x00", "pw", []string{"basic.username"}},
		{"C1 control in username", "ann\u0085", "pw", []string{"basic.username"}},
		{"invalid UTF-8", "ann\xff", "pw", []string{"basic.username"}},
		{"empty password", "ann", "", []string{"basic.password"}},
		{"password too long", "ann", long + "p", []string{"basic.password"}},
		{"CRLF in password", "ann", "pw\r\nX-Evil: 1", []string{"basic.password"}},
		{"both bad", "a:b", "", []string{"basic.username", "basic.password"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := basicPair(tc.user, tc.pass).Check("basic.")
			if tc.bad == nil {
				require.NoError(t, err)
				return
			}
			require.Equal(t, tc.bad, fieldsOf(t, err))
			if tc.pass != "" {
				require.NotContains(t, err.Error(), tc.pass)
			}
		})
	}
}

func TestBasicCredentialPrefix(t *testing.T) {
	require.Equal(t, "ann.exam", basicPair("ann.example@acme.test", "pw").Prefix())
	require.Equal(t, "", basicPair("ann@acme.test", "pw").Prefix(), "short: nothing, as an API key's prefix")
	require.Equal(t, "aééé", basicPair("aéééééééééé@acme.test", "pw").Prefix(), "cut back to a whole character")
}

// TestBasicSealedForm: the sealed plaintext is exactly {"username":..,"password":..}
// (what encoding/json reads back), OpenBasic refuses anything else without quoting it,
// and Authorize sends the pair as HTTP Basic.
func TestBasicSealedForm(t *testing.T) {
	b := basicPair(`ann "the" \admin`, `pw:"x"\ é`)
	sec := b.encode()
	var plain map[string]string
	require.NoError(t, json.Unmarshal(sec.Bytes(), &plain))
	require.Equal(t, map[string]string{"username": `ann "the" \admin`, "password": `pw:"x"\ é`}, plain)
	got, err := OpenBasic(sec)
	require.NoError(t, err)
	require.Equal(t, `ann "the" \admin`, got.Username.Reveal())
	require.Equal(t, `pw:"x"\ é`, got.Password.Reveal())

	for _, bad := range []string{"", "sk_live_key", `{"username":"a"}`, `{"username":"a","password":"b","x":1}`,
		`{"username":"a","password":"b"} {}`, `{"username":1,"password":"SECRETpw"}`} {
		_, err := OpenBasic(vault.NewSecret(bad))
		require.ErrorIs(t, err, errBasicSealed, bad)
		require.NotContains(t, err.Error(), "SECRETpw")
	}

	r, _ := http.NewRequest(http.MethodGet, "https://api.example.com/x", nil)
	require.NoError(t, Provider{}.Authorize(r, AuthModeBasic, sec))
	u, p, ok := r.BasicAuth()
	require.True(t, ok)
	require.Equal(t, `ann "the" \admin`, u)
	require.Equal(t, `pw:"x"\ é`, p)
	require.ErrorIs(t, Provider{}.Authorize(r, AuthModeBasic, vault.NewSecret("not json")), ErrUnsendable)
}

// TestAuthorize: every mode's injection, from the one place.
func TestAuthorize(t *testing.T) {
	key := vault.NewSecret("k3y:part")
	tests := []struct {
		name   string
		p      Provider
		mode   AuthMode
		header string
		want   string
	}{
		{"oauth2 bearer", Provider{}, AuthModeOAuth2, "Authorization", "Bearer k3y:part"},
		{"minted bearer", Provider{}, AuthModeClientCredentials, "Authorization", "Bearer k3y:part"},
		{"api key default bearer", Provider{}, AuthModeAPIKey, "Authorization", "Bearer k3y:part"},
		{"api key header", Provider{APIKeyAuth: APIKeyHeader, APIKeyHeader: "X-Api-Key"}, AuthModeAPIKey, "X-Api-Key", "k3y:part"},
		{"api key header format", Provider{APIKeyAuth: APIKeyHeader, APIKeyHeader: "Authorization", APIKeyFormat: "Token {key}"},
			AuthModeAPIKey, "Authorization", "Token k3y:part"},
		{"api key basic, split", Provider{APIKeyAuth: APIKeyBasic}, AuthModeAPIKey, "Authorization", "Basic azN5OnBhcnQ="},
		{"api key basic, username", Provider{APIKeyAuth: APIKeyBasic, APIKeyBasicUsername: "api"}, AuthModeAPIKey,
			"Authorization", "Basic YXBpOmszeTpwYXJ0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "https://api.example.com/x", nil)
			require.NoError(t, tc.p.Authorize(r, tc.mode, key))
			require.Equal(t, tc.want, r.Header.Get(tc.header))
		})
	}
	r, _ := http.NewRequest(http.MethodGet, "https://api.example.com/x", nil)
	require.ErrorIs(t, Provider{}.Authorize(r, AuthModeAPIKey, vault.NewSecret("a\r\nX-Evil: 1")), ErrUnsendable)
	require.Empty(t, r.Header)
}

// plainSealer "seals" by copying, recording the binding (NewTypedConnection's tests).
type plainSealer struct{ bound vault.Binding }

func (s *plainSealer) Seal(_ context.Context, b vault.Binding, p vault.Secret) ([]byte, error) {
	s.bound = b
	return append([]byte(nil), p.Bytes()...), nil
}

func (s *plainSealer) Open(_ context.Context, _ vault.Binding, env []byte) (vault.Secret, error) {
	return vault.SecretFromBytes(append([]byte(nil), env...)), nil
}

// TestNewTypedConnection: api_key and basic connections seal into the api_key field bound
// to the API-key origins (the health check's included); each mode refuses the other's
// credential and a non-typed provider refuses both.
func TestNewTypedConnection(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	basicP := Provider{Name: "jira", AuthMode: AuthModeBasic, APIBaseURL: "https://{site}.atlassian.net/rest",
		HealthCheckURL:   "https://{site}.atlassian.net/rest/api/3/myself",
		ConnectionConfig: []ConfigParam{{Name: "site", Pattern: "^[a-z0-9-]{1,63}$"}}}
	keyP := Provider{Name: "stripe", AuthMode: AuthModeAPIKey, APIBaseURL: "https://api.stripe.com"}
	pair := basicPair("ann.example@acme.test", "tok:en")
	s := &plainSealer{}

	c, err := NewTypedConnection(context.Background(), s, basicP, "ws_1", "jira", "u", "apk_1",
		TypedCredential{Basic: pair}, map[string]string{"site": "acme"}, nil, now)
	require.NoError(t, err)
	require.Equal(t, "basic", c.Connection.AuthMode)
	require.Equal(t, "ann.exam", c.Connection.CredentialPrefix)
	require.JSONEq(t, `{"username":"ann.example@acme.test","password":"tok:en"}`, string(c.Credential.APIKey))
	require.Equal(t, vault.APIKeyBinding("ws_1", c.Connection.ID, vault.NewOrigins("https://acme.atlassian.net")), s.bound)
	require.Equal(t, "tok:en", pair.Password.Reveal(), "the caller's credential is left as it was")

	_, err = NewTypedConnection(context.Background(), s, basicP, "ws_1", "jira", "u", "apk_1",
		TypedCredential{Basic: pair}, map[string]string{"site": "evil.com/x"}, nil, now)
	require.Error(t, err)

	k, err := NewTypedConnection(context.Background(), s, keyP, "ws_1", "stripe", "u", "apk_1",
		TypedCredential{APIKey: vault.NewSecret("sk_live_0123456789abcdef")}, nil, nil, now)
	require.NoError(t, err)
	require.Equal(t, "api_key", k.Connection.AuthMode)
	require.Equal(t, "sk_live_", k.Connection.CredentialPrefix)

	refused := []struct {
		p     Provider
		cred  TypedCredential
		field string
	}{
		{keyP, TypedCredential{Basic: pair}, "basic"},
		{keyP, TypedCredential{}, "api_key"},
		{basicP, TypedCredential{APIKey: vault.NewSecret("sk_live_x")}, "api_key"},
		{basicP, TypedCredential{}, "basic.username"},
		{Provider{AuthMode: AuthModeOAuth2}, TypedCredential{Basic: pair}, "provider"},
	}
	for _, tc := range refused {
		_, err := NewTypedConnection(context.Background(), s, tc.p, "ws_1", "p", "u", "apk_1", tc.cred,
			map[string]string{"site": "acme"}, nil, now)
		require.Equal(t, tc.field, fieldsOf(t, err)[0])
	}
	require.True(t, AuthModeBasic.Typed())
	require.True(t, AuthModeAPIKey.Typed())
	require.False(t, AuthModeOAuth2.Typed())
	require.False(t, AuthModeClientCredentials.Typed())
}

// FuzzBasicCredential: whatever pair Check accepts survives sealing and opening unchanged
// and reaches the provider as exactly that HTTP Basic pair; whatever it refuses names a
// field and never the password; OpenBasic never panics on any plaintext.
func FuzzBasicCredential(f *testing.F) {
	f.Add("ann@example.com", "ATATT3x-token")
	f.Add("a:b", "pw")
	f.Add(`a"\`, "p\"w\\:é")
	f.Add("ann", "p\r\nw")
	f.Add("\xff", "")
	f.Fuzz(func(t *testing.T, user, pass string) {
		b := basicPair(user, pass)
		if err := b.Check("basic."); err != nil {
			require.NotEmpty(t, fieldsOf(t, err))
			if len(pass) >= 4 {
				require.NotContains(t, err.Error(), pass)
			}
			_, _ = OpenBasic(vault.NewSecret(user + pass))
			return
		}
		require.NotContains(t, user, ":")
		got, err := OpenBasic(b.encode())
		require.NoError(t, err)
		require.Equal(t, user, got.Username.Reveal())
		require.Equal(t, pass, got.Password.Reveal())
		r, _ := http.NewRequest(http.MethodGet, "https://api.example.com/", nil)
		require.NoError(t, Provider{}.Authorize(r, AuthModeBasic, b.encode()))
		u, p, ok := r.BasicAuth()
		require.True(t, ok)
		require.Equal(t, user, u)
		require.Equal(t, pass, p)
	})
}

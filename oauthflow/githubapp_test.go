package oauthflow

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow/githubapptest"
	"github.com/authpipe/authpipe-proxy/vault"
)

// gitHubAppProvider is a github_app provider at the test server, filled for installation.
func gitHubAppProvider(t *testing.T, base, installation string) Provider {
	t.Helper()
	p := Provider{Name: "gh", DisplayName: "GH", AuthMode: AuthModeGitHubApp,
		TokenURL: base + "/app/installations/{installation_id}/access_tokens", APIBaseURL: base,
		ConnectionConfig: []ConfigParam{{Name: "installation_id", Pattern: "^[0-9]{1,20}$"}}}
	out, err := p.ForConnection(map[string]string{"installation_id": installation}, nil)
	require.NoError(t, err)
	return out
}

func appClient(gh *githubapptest.Server, iss string) ClientCredentials {
	return ClientCredentials{ClientID: iss, ClientSecret: vault.NewSecret(gh.PrivateKeyPEM())}
}

func TestGitHubAppJWTClaims(t *testing.T) {
	gh := githubapptest.New(t, githubapptest.Options{})
	now := time.Unix(1_800_000_000, 0)
	tok, err := gitHubAppJWT(appClient(gh, gh.AppID()), now)
	require.NoError(t, err)
	parsed, err := jwt.ParseSigned(tok.Reveal(), []jose.SignatureAlgorithm{jose.RS256})
	require.NoError(t, err)
	require.Equal(t, "JWT", parsed.Headers[0].ExtraHeaders["typ"])
	block, _ := pem.Decode([]byte(gh.PrivateKeyPEM()))
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	require.NoError(t, err)
	var c jwt.Claims
	require.NoError(t, parsed.Claims(&key.PublicKey, &c))
	require.Equal(t, gh.AppID(), c.Issuer)
	require.Equal(t, now.Add(-60*time.Second), c.IssuedAt.Time())
	require.Equal(t, now.Add(9*time.Minute), c.Expiry.Time())
	require.Empty(t, c.Audience)
}

func TestGitHubAppKeyFormats(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		pem string
		ok  bool
	}{
		"pkcs1":    {string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})), true},
		"pkcs8":    {string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})), true},
		"1024 bit": {string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)})), false},
		"not pem":  {"s3cr3t", false},
		"cert":     {string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")})), false},
		"garbage":  {string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("x")})), false},
	} {
		t.Run(name, func(t *testing.T) {
			err := ValidateGitHubAppKey(vault.NewSecret(tc.pem))
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidAppKey)
			require.NotContains(t, err.Error(), "PRIVATE")
		})
	}
}

func TestMintGitHubApp(t *testing.T) {
	gh := githubapptest.New(t, githubapptest.Options{})
	hc := tokenClient(t, "127.0.0.0/8")
	p := gitHubAppProvider(t, gh.URL, "1001")
	ctx := context.Background()

	t.Run("whole installation, App ID as iss", func(t *testing.T) {
		now := time.Now()
		tok, err := MintGitHubApp(ctx, hc, p, appClient(gh, gh.AppID()), nil, now)
		require.NoError(t, err)
		require.Equal(t, gh.Last(), tok.AccessToken.Reveal())
		require.Equal(t, "Bearer", tok.TokenType)
		require.WithinDuration(t, now.Add(time.Hour), *tok.ExpiresAt, 2*time.Second)
		require.Equal(t, []string{"contents:write", "issues:write", "metadata:read", "pull_requests:read"}, tok.Scopes)
		rec, ok := gh.Token(tok.AccessToken.Reveal())
		require.True(t, ok)
		require.False(t, rec.Narrowed)
		require.Nil(t, rec.Repositories)
	})
	t.Run("narrowed, Client ID as iss", func(t *testing.T) {
		n, err := ParseNarrowing("beta,alpha", true, "contents:read,issues:write", true)
		require.NoError(t, err)
		tok, err := MintGitHubApp(ctx, hc, p, appClient(gh, gh.ClientID()), n, time.Now())
		require.NoError(t, err)
		require.Equal(t, []string{"contents:read", "issues:write", "repository:alpha", "repository:beta"}, tok.Scopes)
		rec, ok := gh.Token(tok.AccessToken.Reveal())
		require.True(t, ok)
		require.Equal(t, []string{"alpha", "beta"}, rec.Repositories)
		require.Equal(t, map[string]string{"contents": "read", "issues": "write"}, rec.Permissions)
	})
	for name, tc := range map[string]struct {
		p      Provider
		client ClientCredentials
		n      *Narrowing
		status int
		code   string
	}{
		"wrong iss":           {p, appClient(gh, "999"), nil, 401, "invalid_client"},
		"unknown install":     {gitHubAppProvider(t, gh.URL, "2002"), appClient(gh, gh.AppID()), nil, 404, "invalid_grant"},
		"repository not had":  {p, appClient(gh, gh.AppID()), &Narrowing{Repositories: []string{"delta"}}, 422, "invalid_scope"},
		"permission above":    {p, appClient(gh, gh.AppID()), &Narrowing{Permissions: map[string]string{"metadata": "write"}}, 422, "invalid_scope"},
		"permission not held": {p, appClient(gh, gh.AppID()), &Narrowing{Permissions: map[string]string{"actions": "read"}}, 422, "invalid_scope"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := MintGitHubApp(ctx, hc, tc.p, tc.client, tc.n, time.Now())
			var pe *ProviderError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tc.status, pe.Status)
			require.Equal(t, tc.code, pe.Code)
		})
	}
	t.Run("through Mint, the machine grants' one entry point", func(t *testing.T) {
		tok, err := Mint(ctx, hc, p, appClient(gh, gh.AppID()), vault.Secret{}, time.Now())
		require.NoError(t, err)
		rec, ok := gh.Token(tok.AccessToken.Reveal())
		require.True(t, ok)
		require.False(t, rec.Narrowed)
	})
	t.Run("another key", func(t *testing.T) {
		other := githubapptest.New(t, githubapptest.Options{})
		_, err := MintGitHubApp(ctx, hc, p, appClient(other, gh.AppID()), nil, time.Now())
		var pe *ProviderError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, "invalid_client", pe.Code)
	})
	t.Run("the app's next key after a refusal", func(t *testing.T) {
		other := githubapptest.New(t, githubapptest.Options{})
		client := appClient(other, gh.AppID()) // a key GitHub no longer has
		client.NextSecret = vault.NewSecret(gh.PrivateKeyPEM())
		before := gh.Refusals()
		tok, err := MintGitHubApp(ctx, hc, p, client, nil, time.Now())
		require.NoError(t, err)
		require.Equal(t, gh.Last(), tok.AccessToken.Reveal())
		require.Equal(t, before+1, gh.Refusals(), "the current key was tried first")
	})
	t.Run("a JWT from a skewed clock", func(t *testing.T) {
		_, err := MintGitHubApp(ctx, hc, p, appClient(gh, gh.AppID()), nil, time.Now().Add(-15*time.Minute))
		var pe *ProviderError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, http.StatusUnauthorized, pe.Status)
	})
	t.Run("bad key sends nothing", func(t *testing.T) {
		before := gh.Mints() + gh.Refusals()
		_, err := MintGitHubApp(ctx, hc, p, ClientCredentials{ClientID: "1", ClientSecret: vault.NewSecret("nope")}, nil, time.Now())
		require.ErrorIs(t, err, ErrInvalidAppKey)
		require.Equal(t, before, gh.Mints()+gh.Refusals())
	})
	t.Run("malformed narrowing sends nothing", func(t *testing.T) {
		before := gh.Mints() + gh.Refusals()
		_, err := MintGitHubApp(ctx, hc, p, appClient(gh, gh.AppID()), &Narrowing{Repositories: []string{"a/b"}}, time.Now())
		require.ErrorIs(t, err, problem.ErrInvalidRequest)
		require.Equal(t, before, gh.Mints()+gh.Refusals())
	})
	t.Run("unfilled token_url", func(t *testing.T) {
		q := p
		q.TokenURL = gh.URL + "/app/installations/{installation_id}/access_tokens"
		_, err := MintGitHubApp(ctx, hc, q, appClient(gh, gh.AppID()), nil, time.Now())
		require.ErrorIs(t, err, ErrInvalidProvider)
	})
}

func TestMintGitHubAppResponses(t *testing.T) {
	hc := tokenClient(t, "127.0.0.0/8")
	gh := githubapptest.New(t, githubapptest.Options{})
	for name, tc := range map[string]struct {
		status int
		header map[string]string
		body   string
		check  func(t *testing.T, tok Token, err error)
	}{
		"rate limited 403": {403, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "30"}, `{"message":"API rate limit exceeded"}`,
			func(t *testing.T, _ Token, err error) {
				var pe *ProviderError
				require.ErrorAs(t, err, &pe)
				require.Equal(t, 429, pe.Status)
				require.Equal(t, "30", pe.RetryAfter)
			}},
		"suspended 403": {403, nil, `{"message":"This installation has been suspended"}`,
			func(t *testing.T, _ Token, err error) {
				var pe *ProviderError
				require.ErrorAs(t, err, &pe)
				require.Equal(t, "unauthorized_client", pe.Code)
				require.NotContains(t, err.Error(), "suspended")
			}},
		"5xx": {502, nil, `<html>bad gateway</html>`, func(t *testing.T, _ Token, err error) {
			var pe *ProviderError
			require.ErrorAs(t, err, &pe)
			require.True(t, pe.NoCode)
		}},
		"redirect not followed": {307, map[string]string{"Location": gh.URL + "/app/installations/1001/access_tokens"}, ``,
			func(t *testing.T, _ Token, err error) {
				require.Error(t, err)
				require.Zero(t, gh.Mints())
			}},
		"no token": {201, nil, `{"expires_at":"2099-01-01T00:00:00Z"}`, func(t *testing.T, _ Token, err error) {
			require.ErrorIs(t, err, ErrMalformedTokenResponse)
		}},
		"expires too far": {201, nil, `{"token":"ghs_x","expires_at":"2099-01-01T00:00:00Z"}`, func(t *testing.T, _ Token, err error) {
			require.ErrorIs(t, err, ErrMalformedTokenResponse)
			require.NotContains(t, err.Error(), "ghs_x")
		}},
		"odd grants dropped": {201, nil, `{"token":"ghs_y","expires_at":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) +
			`","permissions":{"contents":"read","Bad Name":"read","issues":"owner"},"repositories":[{"name":"ok"},{"name":"../x"}]}`,
			func(t *testing.T, tok Token, err error) {
				require.NoError(t, err)
				require.Equal(t, []string{"contents:read", "repository:ok"}, tok.Scopes)
			}},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				require.Equal(t, "application/vnd.github+json", r.Header.Get("Accept"))
				require.Equal(t, "2022-11-28", r.Header.Get("X-GitHub-Api-Version"))
				require.True(t, strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ey"))
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			tok, err := MintGitHubApp(context.Background(), hc, gitHubAppProvider(t, srv.URL, "7"), appClient(gh, gh.AppID()), nil, time.Now())
			tc.check(t, tok, err)
		})
	}
}

func TestRevokeGitHubApp(t *testing.T) {
	gh := githubapptest.New(t, githubapptest.Options{})
	hc := tokenClient(t, "127.0.0.0/8")
	p := gitHubAppProvider(t, gh.URL, "1001")
	ctx := context.Background()
	tok, err := MintGitHubApp(ctx, hc, p, appClient(gh, gh.AppID()), nil, time.Now())
	require.NoError(t, err)
	require.Equal(t, gh.URL+"/installation/token", p.GitHubAppRevocationURL())
	require.NoError(t, RevokeGitHubApp(ctx, hc, p, tok.AccessToken))
	rec, _ := gh.Token(tok.AccessToken.Reveal())
	require.True(t, rec.Revoked)
	require.EqualValues(t, 1, gh.Revocations())
	// Revoked already (GitHub answers 401): the same outcome.
	require.NoError(t, RevokeGitHubApp(ctx, hc, p, tok.AccessToken))
	require.EqualValues(t, 1, gh.Revocations())
	// Not a github_app provider.
	q := p
	q.AuthMode = AuthModeOAuth2
	require.True(t, errors.Is(RevokeGitHubApp(ctx, hc, q, tok.AccessToken), ErrRevocationUnsupported))
}

func TestParseNarrowing(t *testing.T) {
	long := strings.Repeat("a", 101)
	var repos []string
	for i := range 501 {
		repos = append(repos, "r"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	for name, tc := range map[string]struct {
		repos, perms       string
		hasRepos, hasPerms bool
		field              string // "" = ok
	}{
		"none":               {"", "", false, false, ""},
		"repos":              {"b,a,my-repo.v2_x", "", true, false, ""},
		"perms":              {"", "contents:read,issues:write,administration:admin", false, true, ""},
		"empty repos":        {"", "", true, false, "repositories"},
		"empty item":         {"a,,b", "", true, false, "repositories"},
		"slash":              {"octo/a", "", true, false, "repositories"},
		"dot":                {"..", "", true, false, "repositories"},
		"too long name":      {long, "", true, false, "repositories"},
		"duplicate repo":     {"a,b,a", "", true, false, "repositories"},
		"501 repos":          {strings.Join(repos, ","), "", true, false, "repositories"},
		"space":              {"a, b", "", true, false, "repositories"},
		"empty perms":        {"", "", false, true, "permissions"},
		"no access":          {"", "contents", false, true, "permissions"},
		"bad access":         {"", "contents:owner", false, true, "permissions"},
		"upper name":         {"", "Contents:read", false, true, "permissions"},
		"duplicate perm":     {"", "contents:read,contents:write", false, true, "permissions"},
		"two colons":         {"", "contents:read:write", false, true, "permissions"},
		"percent-decoded NL": {"a\nb", "", true, false, "repositories"},
	} {
		t.Run(name, func(t *testing.T) {
			n, err := ParseNarrowing(tc.repos, tc.hasRepos, tc.perms, tc.hasPerms)
			if tc.field == "" {
				require.NoError(t, err)
				if !tc.hasRepos && !tc.hasPerms {
					require.Nil(t, n)
				}
				require.NoError(t, n.Validate())
				return
			}
			require.Nil(t, n)
			var p *problem.Problem
			require.ErrorAs(t, err, &p)
			require.Equal(t, "invalid_request", p.Code)
			require.Equal(t, tc.field, p.Errors[0].Field)
		})
	}
	n, err := ParseNarrowing("b,a", true, "issues:write,contents:read", true)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, n.Repositories)
	require.Equal(t, []string{"contents:read", "issues:write"}, n.PermissionList())
	require.JSONEq(t, `{"repositories":["a","b"],"permissions":{"contents":"read","issues":"write"}}`, string(n.requestBody()))
}

// FuzzParseNarrowing: whatever the query holds, the parser either refuses it with a 400
// invalid_request or returns a narrowing that validates, within GitHub's limits, whose
// request body is JSON of names that need no escaping.
func FuzzParseNarrowing(f *testing.F) {
	f.Add("alpha,beta", "contents:read,issues:write")
	f.Add("", "")
	f.Add("a,,b", "x:y")
	f.Add("..", "contents:admin")
	f.Add("a\x00b", "contents:read,contents:read")
	f.Fuzz(func(t *testing.T, repos, perms string) {
		for _, has := range [][2]bool{{true, true}, {true, false}, {false, true}} {
			n, err := ParseNarrowing(repos, has[0], perms, has[1])
			if err != nil {
				require.Nil(t, n)
				require.ErrorIs(t, err, problem.ErrInvalidRequest)
				continue
			}
			require.NoError(t, n.Validate())
			require.LessOrEqual(t, len(n.Repositories), MaxNarrowRepositories)
			require.LessOrEqual(t, len(n.Permissions), MaxNarrowPermissions)
			for _, r := range n.Repositories {
				require.NotContains(t, r, ",")
				require.NotContains(t, r, "/")
			}
			require.NotContains(t, string(n.requestBody()), `\`)
		}
	})
}

// TestGitHubAppCatalogEntries pins github-app and github-app-ghe: an installation id fills
// one path segment of the token URL (digits only), a GHE.com subdomain one label under
// ghe.com; the revocation goes to the API base.
func TestGitHubAppCatalogEntries(t *testing.T) {
	cat, err := LoadCatalog()
	require.NoError(t, err)
	gh, ok := cat.Get("github-app")
	require.True(t, ok)
	p, err := gh.ForConnection(map[string]string{"installation_id": "42"}, nil)
	require.NoError(t, err)
	require.Equal(t, "https://api.github.com/app/installations/42/access_tokens", p.TokenURL)
	require.Equal(t, "https://api.github.com/installation/token", p.GitHubAppRevocationURL())
	require.Equal(t, "2022-11-28", p.StaticHeaders["X-GitHub-Api-Version"])
	for _, bad := range []string{"", "abc", "4/2", "../1", "123456789012345678901"} {
		_, err := gh.ForConnection(map[string]string{"installation_id": bad}, nil)
		require.Error(t, err, bad)
	}
	ghe, ok := cat.Get("github-app-ghe")
	require.True(t, ok)
	p, err = ghe.ForConnection(map[string]string{"subdomain": "octo", "installation_id": "7"}, nil)
	require.NoError(t, err)
	require.Equal(t, "https://api.octo.ghe.com/app/installations/7/access_tokens", p.TokenURL)
	require.Equal(t, "https://api.octo.ghe.com/installation/token", p.GitHubAppRevocationURL())
	for _, bad := range []string{"evil.com", "Octo", "-x", ""} {
		_, err := ghe.ForConnection(map[string]string{"subdomain": bad, "installation_id": "7"}, nil)
		require.Error(t, err, bad)
	}
}

package oauthflow

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault"
)

// testRSAKey is one 2048-bit key for the package's tests (generating one per test is slow
// under -race).
var testRSAKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

func pemOf(t testing.TB, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pkcs8(t testing.TB, key any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pemOf(t, "PRIVATE KEY", der)
}

// serviceAccountJSON is a Google-style key file for key, with a token_uri the proxy must
// ignore.
func serviceAccountJSON(t testing.TB, email, kid string, key any) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"type": "service_account", "project_id": "p", "private_key_id": kid,
		"private_key": pkcs8(t, key), "client_email": email, "client_id": "1234",
		"token_uri": "https://attacker.example/token", "auth_uri": "https://attacker.example/auth"})
	require.NoError(t, err)
	return string(b)
}

func machineProvider(mode AuthMode, method TokenAuthMethod, tokenURL string) Provider {
	return Provider{Name: "machine", DisplayName: "Machine", AuthMode: mode, TokenURL: tokenURL, TokenAuthMethod: method,
		DefaultScopes: []string{"read"}, APIBaseURL: "http://127.0.0.1/api"}
}

func TestParsePrivateKeyFormats(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecDER, err := x509.MarshalECPrivateKey(ec)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		pem, alg string
	}{
		"pkcs1":     {pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(testRSAKey)), "RS256"},
		"pkcs8 rsa": {pkcs8(t, testRSAKey), "RS256"},
		"pkcs8 ec":  {pkcs8(t, ec), "ES256"},
		"sec1 ec":   {pemOf(t, "EC PRIVATE KEY", ecDER), "ES256"},
		"p384":      {pkcs8(t, p384), ""},
		"rsa 1024":  {pkcs8(t, small), ""},
		"cert":      {pemOf(t, "CERTIFICATE", []byte("x")), ""},
		"garbage":   {"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", ""},
		"not pem":   {"hello", ""},
	} {
		t.Run(name, func(t *testing.T) {
			k, err := ParsePrivateKey([]byte(tc.pem))
			if tc.alg == "" {
				require.ErrorIs(t, err, ErrInvalidKey)
				require.NotContains(t, err.Error(), "BEGIN")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.alg, k.Algorithm())
			require.NotContains(t, k.String(), "PRIVATE")
		})
	}
}

func TestParseServiceAccountKey(t *testing.T) {
	sa, err := ParseServiceAccountKey([]byte(serviceAccountJSON(t, "bot@p.iam.gserviceaccount.com", "kid-1", testRSAKey)))
	require.NoError(t, err)
	require.Equal(t, "bot@p.iam.gserviceaccount.com", sa.Issuer)
	require.Equal(t, "kid-1", sa.Key.KeyID())
	for name, raw := range map[string]string{
		"not json":   "nope",
		"two docs":   `{"client_email":"a"} {}`,
		"wrong type": `{"type":"authorized_user","client_email":"a","private_key":"x"}`,
		"no issuer":  `{"type":"service_account","private_key":"x"}`,
		"bad key":    `{"type":"service_account","client_email":"a","private_key":"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseServiceAccountKey([]byte(raw))
			require.ErrorIs(t, err, ErrInvalidKey)
		})
	}
}

// The assertions' claims: who, for whom, for where, how long; a fresh jti each time.
func TestAssertionClaims(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	key, err := ParsePrivateKey([]byte(pkcs8(t, testRSAKey)))
	require.NoError(t, err)
	p := machineProvider(AuthModeClientCredentials, PrivateKeyJWT, "https://idp.example/token")
	read := func(tok string) (map[string]any, jwt.Claims) {
		parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
		require.NoError(t, err)
		var c jwt.Claims
		var all map[string]any
		require.NoError(t, parsed.Claims(testRSAKey.Public(), &c, &all))
		return all, c
	}
	a1, err := p.ClientAssertion(key, "cid", "https://idp.example/token", now)
	require.NoError(t, err)
	a2, err := p.ClientAssertion(key, "cid", "https://idp.example/token", now)
	require.NoError(t, err)
	_, c1 := read(a1)
	_, c2 := read(a2)
	require.Equal(t, "cid", c1.Issuer)
	require.Equal(t, "cid", c1.Subject)
	require.Equal(t, jwt.Audience{"https://idp.example/token"}, c1.Audience)
	require.Equal(t, now.Add(5*time.Minute), c1.Expiry.Time().UTC())
	require.Equal(t, now, c1.IssuedAt.Time().UTC())
	require.Len(t, c1.ID, 32, "128 bits, hex")
	require.NotEqual(t, c1.ID, c2.ID)

	p.AssertionAudience = "https://login.example"
	sa, err := ParseServiceAccountKey([]byte(serviceAccountJSON(t, "bot@example", "kid-1", testRSAKey)))
	require.NoError(t, err)
	g, err := p.GrantAssertion(sa, "", "https://idp.example/token", now)
	require.NoError(t, err)
	all, gc := read(g)
	require.Equal(t, "bot@example", gc.Issuer)
	require.Equal(t, "bot@example", gc.Subject, "no subject configured: the account itself")
	require.Equal(t, jwt.Audience{"https://login.example"}, gc.Audience, "assertion_audience wins, never the key file's token_uri")
	require.Equal(t, now.Add(time.Hour), gc.Expiry.Time().UTC())
	require.Equal(t, "read", all["scope"])
	parsed, err := jwt.ParseSigned(g, []jose.SignatureAlgorithm{jose.RS256})
	require.NoError(t, err)
	require.Equal(t, "kid-1", parsed.Headers[0].KeyID)
	g, err = p.GrantAssertion(sa, "user@example", "https://idp.example/token", now)
	require.NoError(t, err)
	_, gc = read(g)
	require.Equal(t, "user@example", gc.Subject)
}

func TestParseGrantClient(t *testing.T) {
	c, err := ParseGrantClient([]byte(`{"client_id":"own","client_secret":"s3"}`))
	require.NoError(t, err)
	require.Equal(t, "own", c.ClientID)
	require.Equal(t, "s3", c.ClientSecret.Reveal())
	back, err := ParseGrantClient(c.Sealed().Bytes())
	require.NoError(t, err)
	require.Equal(t, c.ClientID, back.ClientID)
	for _, raw := range []string{``, `{}`, `{"client_id":"a"}`, `{"client_id":"","client_secret":"s"}`, `{"client_id":"a","client_secret":"s","x":1}`, `[]`} {
		_, err := ParseGrantClient([]byte(raw))
		require.ErrorIs(t, err, ErrInvalidGrantSecret, raw)
	}
}

// Client credentials against fosite through the real token call, with each client
// authentication, with the provider's client and with the connection's own.
func TestMintClientCredentials(t *testing.T) {
	hc := tokenClient(t, "127.0.0.0/8")
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{Clients: []oauthtest.MachineClient{
		{ID: "basic-client", Secret: "basic-secret"},
		{ID: "post-client", Secret: "post-secret", AuthMethod: "client_secret_post"},
		{ID: "jwt-client", AuthMethod: "private_key_jwt", PublicKey: testRSAKey.Public(), KeyID: "k1"},
		{ID: "jwt-ec-client", AuthMethod: "private_key_jwt", PublicKey: ec.Public(), Alg: "ES256"},
		{ID: "own-client", Secret: "own-secret"},
	}})
	ecJSON, _ := json.Marshal(map[string]string{"private_key": pkcs8(t, ec)})
	rsaJSON, _ := json.Marshal(map[string]string{"private_key": pkcs8(t, testRSAKey), "private_key_id": "k1"})
	for name, tc := range map[string]struct {
		method TokenAuthMethod
		client ClientCredentials
		grant  string
		check  func(t *testing.T, form map[string][]string, auth string)
	}{
		"basic": {ClientSecretBasic, ClientCredentials{ClientID: "basic-client", ClientSecret: vault.NewSecret("basic-secret")}, "",
			func(t *testing.T, form map[string][]string, auth string) {
				require.NotEmpty(t, auth)
				require.Empty(t, form["client_secret"])
			}},
		"post": {ClientSecretPost, ClientCredentials{ClientID: "post-client", ClientSecret: vault.NewSecret("post-secret")}, "",
			func(t *testing.T, form map[string][]string, auth string) {
				require.Empty(t, auth)
				require.Equal(t, []string{"post-secret"}, form["client_secret"])
			}},
		"private_key_jwt rsa": {PrivateKeyJWT, ClientCredentials{ClientID: "jwt-client", ClientSecret: vault.NewSecret(string(rsaJSON))}, "",
			func(t *testing.T, form map[string][]string, auth string) {
				require.Empty(t, auth)
				require.Empty(t, form["client_secret"])
				require.Equal(t, []string{ClientAssertionType}, form["client_assertion_type"])
				require.NotContains(t, strings.Join(form["client_assertion"], ""), "PRIVATE")
			}},
		"private_key_jwt ec": {PrivateKeyJWT, ClientCredentials{ClientID: "jwt-ec-client", ClientSecret: vault.NewSecret(string(ecJSON))}, "", nil},
		"own client": {ClientSecretBasic, ClientCredentials{ClientID: "basic-client", ClientSecret: vault.NewSecret("basic-secret")},
			`{"client_id":"own-client","client_secret":"own-secret"}`, nil},
	} {
		t.Run(name, func(t *testing.T) {
			p := machineProvider(AuthModeClientCredentials, tc.method, srv.TokenURL())
			before := srv.Mints()
			tok, err := Mint(context.Background(), hc, p, tc.client, vault.NewSecret(tc.grant), time.Now())
			require.NoError(t, err)
			require.Equal(t, before+1, srv.Mints())
			require.True(t, srv.Active(context.Background(), tok.AccessToken.Reveal()))
			require.True(t, tok.RefreshToken.IsZero())
			require.NotNil(t, tok.ExpiresAt)
			require.Equal(t, []string{"read"}, tok.Scopes)
			form := srv.LastTokenForm()
			require.Equal(t, []string{"client_credentials"}, form["grant_type"])
			require.Equal(t, []string{"read"}, form["scope"])
			if tc.check != nil {
				tc.check(t, form, srv.LastTokenHeader().Get("Authorization"))
			}
		})
	}

	// A wrong secret: invalid_client, a *ProviderError with nothing of the request.
	p := machineProvider(AuthModeClientCredentials, ClientSecretBasic, srv.TokenURL())
	_, err = Mint(context.Background(), hc, p, ClientCredentials{ClientID: "basic-client", ClientSecret: vault.NewSecret("wrong-secret")}, vault.Secret{}, time.Now())
	var pe *ProviderError
	require.True(t, errors.As(err, &pe), "%v", err)
	require.Equal(t, "invalid_client", pe.Code)
	require.NotContains(t, err.Error(), "wrong-secret")
	// A key the client did not register: invalid_client too.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p.TokenAuthMethod = PrivateKeyJWT
	_, err = Mint(context.Background(), hc, p, ClientCredentials{ClientID: "jwt-client", ClientSecret: vault.NewSecret(pkcs8(t, other))}, vault.Secret{}, time.Now())
	require.True(t, errors.As(err, &pe), "%v", err)
	require.Equal(t, "invalid_client", pe.Code)
}

// JWT bearer with a generated service-account key: fosite checks iss, sub, aud, exp, iat
// and that the jti is new; without client authentication (Google) and with the
// provider's client.
func TestMintJWTBearer(t *testing.T) {
	hc := tokenClient(t, "127.0.0.0/8")
	srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{AnonymousJWTBearer: true,
		Clients: []oauthtest.MachineClient{{ID: "app", Secret: "app-secret"}},
		Issuers: []oauthtest.TrustedIssuer{
			{Issuer: "bot@example", Subject: "bot@example", PublicKey: testRSAKey.Public(), KeyID: "kid-1"},
			{Issuer: "bot@example", Subject: "user@example", PublicKey: testRSAKey.Public(), KeyID: "kid-1"},
		}})
	key := vault.NewSecret(serviceAccountJSON(t, "bot@example", "kid-1", testRSAKey))
	p := machineProvider(AuthModeJWTBearer, NoClientAuth, srv.TokenURL())
	tok, err := Mint(context.Background(), hc, p, ClientCredentials{}, key, time.Now())
	require.NoError(t, err)
	require.True(t, srv.Active(context.Background(), tok.AccessToken.Reveal()))
	form := srv.LastTokenForm()
	require.Equal(t, []string{GrantTypeJWTBearer}, form["grant_type"])
	require.Empty(t, form["client_id"], "none: no client at all")
	require.Empty(t, srv.LastTokenHeader().Get("Authorization"))
	// Twice in the same second: a fresh jti each time (fosite refuses a known one).
	_, err = Mint(context.Background(), hc, p, ClientCredentials{}, key, time.Now())
	require.NoError(t, err)

	// A subject from connection_config.
	p.ConnectionConfig = []ConfigParam{{Name: "subject", Pattern: `[a-z@.]+`}}
	filled, err := p.ForConnection(map[string]string{"subject": "user@example"}, nil)
	require.NoError(t, err)
	_, err = Mint(context.Background(), hc, filled, ClientCredentials{}, key, time.Now())
	require.NoError(t, err)

	// With the provider's client authenticating (client_secret_basic).
	p = machineProvider(AuthModeJWTBearer, ClientSecretBasic, srv.TokenURL())
	_, err = Mint(context.Background(), hc, p, ClientCredentials{ClientID: "app", ClientSecret: vault.NewSecret("app-secret")}, key, time.Now())
	require.NoError(t, err)
	require.NotEmpty(t, srv.LastTokenHeader().Get("Authorization"))

	// A wrong audience (assertion_audience not the server's) and an expired clock: refused.
	p = machineProvider(AuthModeJWTBearer, NoClientAuth, srv.TokenURL())
	p.AssertionAudience = "https://elsewhere.example"
	_, err = Mint(context.Background(), hc, p, ClientCredentials{}, key, time.Now())
	var pe *ProviderError
	require.True(t, errors.As(err, &pe), "%v", err)
	require.Equal(t, "invalid_grant", pe.Code)
	p.AssertionAudience = ""
	_, err = Mint(context.Background(), hc, p, ClientCredentials{}, key, time.Now().Add(-2*time.Hour))
	require.True(t, errors.As(err, &pe), "%v", err)
	require.Equal(t, "invalid_grant", pe.Code)
	// An unknown key: invalid_grant.
	srv.DistrustIssuer("bot@example")
	_, err = Mint(context.Background(), hc, p, ClientCredentials{}, key, time.Now())
	require.True(t, errors.As(err, &pe), "%v", err)
	require.Equal(t, "invalid_grant", pe.Code)
}

// The existing client authentications send what they sent before private_key_jwt and
// none existed: exactly these fields (TestExchange* pin the rest).
func TestTokenCallClientAuthUnchanged(t *testing.T) {
	srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{Clients: []oauthtest.MachineClient{
		{ID: "b", Secret: "s"}, {ID: "p", Secret: "s", AuthMethod: "client_secret_post"}}})
	hc := tokenClient(t, "127.0.0.0/8")
	p := machineProvider(AuthModeClientCredentials, ClientSecretBasic, srv.TokenURL())
	p.DefaultScopes = nil
	_, err := Mint(context.Background(), hc, p, ClientCredentials{ClientID: "b", ClientSecret: vault.NewSecret("s")}, vault.Secret{}, time.Now())
	require.NoError(t, err)
	require.Equal(t, map[string][]string{"grant_type": {"client_credentials"}}, srv.LastTokenForm())
	require.Equal(t, "Basic Yjpz", srv.LastTokenHeader().Get("Authorization"))
	p.TokenAuthMethod = ClientSecretPost
	_, err = Mint(context.Background(), hc, p, ClientCredentials{ClientID: "p", ClientSecret: vault.NewSecret("s")}, vault.Secret{}, time.Now())
	require.NoError(t, err)
	require.Equal(t, map[string][]string{"grant_type": {"client_credentials"}, "client_id": {"p"}, "client_secret": {"s"}}, srv.LastTokenForm())
}

func FuzzParsePrivateKey(f *testing.F) {
	f.Add([]byte(pkcs8(f, testRSAKey)))
	f.Add([]byte(pemOf(f, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(testRSAKey))))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte("not a key"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		k, err := ParsePrivateKey(raw)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidKey)
			return
		}
		require.Contains(t, []string{"RS256", "ES256"}, k.Algorithm())
	})
}

func FuzzParseServiceAccountKey(f *testing.F) {
	f.Add([]byte(serviceAccountJSON(f, "bot@example", "kid", testRSAKey)))
	f.Add([]byte(`{"type":"service_account","client_email":"a","private_key":"x"}`))
	f.Add([]byte(`{"client_id":"a","private_key_id":"\u0000"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		sa, err := ParseServiceAccountKey(raw)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidKey)
			return
		}
		require.NotEmpty(t, sa.Issuer)
		require.NotContains(t, sa.String(), "PRIVATE")
	})
}

func FuzzParseGrantClient(f *testing.F) {
	f.Add([]byte(`{"client_id":"own","client_secret":"s3"}`))
	f.Add([]byte(`{"client_id":"\u0007","client_secret":"s"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseGrantClient(raw)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidGrantSecret)
			return
		}
		back, err := ParseGrantClient(c.Sealed().Bytes())
		require.NoError(t, err)
		require.Equal(t, c.ClientID, back.ClientID)
		require.True(t, c.ClientSecret.Equal(back.ClientSecret))
	})
}

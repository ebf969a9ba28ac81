package oauthflow

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault"
)

// mtlsClient is the production token client (outbound: dial-time checks, TLS 1.3, no
// redirects) trusting the test server's CA.
func mtlsClient(t *testing.T, as *oauthtest.MTLSServer) *http.Client {
	t.Helper()
	c, err := outbound.New(outbound.Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, RootCAs: as.RootCAs()})
	require.NoError(t, err)
	return c.TokenClient()
}

func mtlsProvider(as *oauthtest.MTLSServer) Provider {
	return Provider{Name: "adp", DisplayName: "ADP", AuthMode: AuthModeClientCredentials, TokenURL: as.TokenURL(),
		TokenAuthMethod: TLSClientAuth, APIBaseURL: "https://api.example.com"}
}

func clientCredentialsCall(hc *http.Client, p Provider, client ClientCredentials, now time.Time) (Token, error) {
	return withNextSecret(client, func(client ClientCredentials) (Token, error) {
		return tokenCall(context.Background(), hc, p, client, p.TokenURL, map[string]string{"grant_type": "client_credentials", "scope": "read"}, nil, now)
	})
}

// TestTLSClientAuthTokenCall: a client credentials grant authenticated by mutual TLS
// (RFC 8705 section 2.1) against fosite behind an mTLS listener: the registered
// certificate mints a token, client_id is in the body and nothing secret is; no
// certificate, another CA's or another subject's is invalid_client; an unusable one is
// not sent at all (ErrInvalidKey, as a key that cannot sign); a rotation's next
// certificate is tried after invalid_client or in place of an unusable one; no error
// carries the key.
func TestTLSClientAuthTokenCall(t *testing.T) {
	as := oauthtest.NewMTLS(t, oauthtest.MTLSOptions{})
	hc, p := mtlsClient(t, as), mtlsProvider(as)
	good := as.RegisteredCertificate(t)
	creds := func(bundle []byte) ClientCredentials {
		return ClientCredentials{ClientID: as.ClientID(), ClientSecret: vault.SecretFromBytes(append([]byte(nil), bundle...))}
	}
	now := time.Now()

	tok, err := clientCredentialsCall(hc, p, creds(good), now)
	require.NoError(t, err)
	require.True(t, as.Active(context.Background(), tok.AccessToken.Reveal()))
	require.Equal(t, []string{"read"}, tok.Scopes)
	require.NotNil(t, tok.ExpiresAt)
	form := as.LastTokenForm()
	require.Equal(t, []string{as.ClientID()}, form["client_id"])
	require.NotContains(t, form, "client_secret")
	require.Equal(t, "CN="+as.ClientID(), as.LastPeerSubject())

	refused := func(t *testing.T, client ClientCredentials, at time.Time, sent bool) error {
		t.Helper()
		before := as.TokenCalls()
		_, err := clientCredentialsCall(hc, p, client, at)
		require.Error(t, err)
		var pe *ProviderError
		if sent {
			require.True(t, errors.As(err, &pe), "%v", err)
			require.Equal(t, "invalid_client", pe.Code)
			require.Equal(t, before+1, as.TokenCalls())
			require.Equal(t, http.StatusUnauthorized, pe.Status)
		} else {
			require.Equal(t, before, as.TokenCalls(), "nothing is sent with an unusable certificate")
			require.ErrorIs(t, err, ErrClientCertificate)
			require.ErrorIs(t, err, ErrInvalidKey, "handled like a private key that cannot sign")
			require.False(t, errors.As(err, &pe), "not the provider's refusal")
		}
		for _, s := range []string{"BEGIN", string(good[len(good)-80 : len(good)-40])} {
			require.NotContains(t, err.Error(), s)
		}
		return err
	}
	t.Run("no certificate", func(t *testing.T) {
		refused(t, ClientCredentials{ClientID: as.ClientID()}, now, false)
		// Over a client that presents none, the server itself refuses.
		_, err := tokenCall(context.Background(), hc, Provider{Name: "x", AuthMode: AuthModeClientCredentials, TokenURL: as.TokenURL(),
			TokenAuthMethod: ClientSecretPost}, ClientCredentials{ClientID: as.ClientID()}, as.TokenURL(),
			map[string]string{"grant_type": "client_credentials"}, nil, now)
		var pe *ProviderError
		require.True(t, errors.As(err, &pe))
		require.Equal(t, "invalid_client", pe.Code)
		require.Empty(t, as.LastPeerSubject())
	})
	t.Run("another CA's certificate with the registered subject", func(t *testing.T) {
		refused(t, creds(oauthtest.Bundle(tlstest.NewCA(t, "Other CA").Client(t, as.ClientID()))), now, true)
		require.Equal(t, "CN="+as.ClientID(), as.LastPeerSubject(), "presented, and refused by the server")
	})
	t.Run("the CA's certificate for another subject", func(t *testing.T) {
		refused(t, creds(as.ClientCertificate(t, "someone-else")), now, true)
	})
	t.Run("expired", func(t *testing.T) {
		err := refused(t, creds(good), now.Add(2*time.Hour), false)
		require.Contains(t, err.Error(), "expired at")
	})
	t.Run("malformed", func(t *testing.T) {
		refused(t, creds(good[:len(good)/2]), now, false)
	})
	t.Run("rotation: the next certificate after invalid_client", func(t *testing.T) {
		next := as.ClientCertificate(t, "adp-2027")
		as.SetSubjectDN("CN=adp-2027") // rotated at the provider first
		t.Cleanup(func() { as.SetSubjectDN("CN=" + as.ClientID()) })
		c := creds(good)
		c.NextSecret = vault.SecretFromBytes(next)
		tok, err := clientCredentialsCall(hc, p, c, now)
		require.NoError(t, err)
		require.True(t, as.Active(context.Background(), tok.AccessToken.Reveal()))
		require.Equal(t, "CN=adp-2027", as.LastPeerSubject())
		// An expired current certificate goes straight to the next one.
		before := as.TokenCalls()
		_, err = clientCredentialsCall(hc, p, ClientCredentials{ClientID: as.ClientID(), ClientSecret: vault.NewSecret("not a bundle"),
			NextSecret: vault.SecretFromBytes(as.ClientCertificate(t, "adp-2027"))}, now)
		require.NoError(t, err)
		require.Equal(t, before+1, as.TokenCalls())
	})
	t.Run("plain http is refused", func(t *testing.T) {
		q := p
		q.TokenURL = "http://127.0.0.1:1/token"
		_, err := tokenCall(context.Background(), hc, q, creds(good), q.TokenURL, map[string]string{"grant_type": "client_credentials"}, nil, now)
		require.ErrorIs(t, err, outbound.ErrUnsafeURL)
	})
	t.Run("the shared client presents nothing afterwards", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, as.TokenURL(), nil)
		require.NoError(t, err)
		res, err := hc.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Empty(t, as.LastPeerSubject())
	})
}

// TestMintTLSClientAuth: Mint's client credentials grant with tls_client_auth, with the
// provider's client (its secret the PEM bundle) and with a connection's own client (the
// grant secret {"client_id","client_secret":"<PEM bundle>"}); a wrong certificate is
// invalid_client.
func TestMintTLSClientAuth(t *testing.T) {
	as := oauthtest.NewMTLS(t, oauthtest.MTLSOptions{ClientID: "own-client"})
	hc, p := mtlsClient(t, as), mtlsProvider(as)
	p.DefaultScopes = []string{"read", "write"}
	good := as.RegisteredCertificate(t)
	now := time.Now()

	tok, err := Mint(context.Background(), hc, p, ClientCredentials{ClientID: as.ClientID(), ClientSecret: vault.SecretFromBytes(good)}, vault.Secret{}, now)
	require.NoError(t, err)
	require.True(t, as.Active(context.Background(), tok.AccessToken.Reveal()))
	require.Equal(t, []string{"read write"}, as.LastTokenForm()["scope"])

	grant := GrantClient{ClientID: as.ClientID(), ClientSecret: vault.SecretFromBytes(as.RegisteredCertificate(t))}.Sealed()
	tok, err = Mint(context.Background(), hc, p, ClientCredentials{ClientID: "the-providers", ClientSecret: vault.NewSecret("unused")}, grant, now)
	require.NoError(t, err, "the connection's own client and certificate")
	require.True(t, as.Active(context.Background(), tok.AccessToken.Reveal()))
	require.Equal(t, []string{"own-client"}, as.LastTokenForm()["client_id"])

	wrong := GrantClient{ClientID: as.ClientID(), ClientSecret: vault.SecretFromBytes(as.ClientCertificate(t, "intruder"))}.Sealed()
	_, err = Mint(context.Background(), hc, p, ClientCredentials{}, wrong, now)
	var pe *ProviderError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "invalid_client", pe.Code)
	require.Equal(t, http.StatusUnauthorized, pe.Status)
}

// TestPEMKeyNeverSentAsSecret: a client secret that holds a PEM private key (a
// tls_client_auth bundle, a private_key_jwt key) is never sent by client_secret_basic or
// client_secret_post: ErrInvalidKey, no request.
func TestPEMKeyNeverSentAsSecret(t *testing.T) {
	as := oauthtest.NewMTLS(t, oauthtest.MTLSOptions{})
	hc, p := mtlsClient(t, as), mtlsProvider(as)
	bundle := as.RegisteredCertificate(t)
	for _, method := range []TokenAuthMethod{ClientSecretBasic, ClientSecretPost} {
		p.TokenAuthMethod = method
		for _, secret := range [][]byte{bundle, bundle[bytes.Index(bundle, []byte("-----BEGIN PRIVATE KEY")):],
			[]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")} {
			before := as.TokenCalls()
			_, err := clientCredentialsCall(hc, p, ClientCredentials{ClientID: as.ClientID(), ClientSecret: vault.SecretFromBytes(bytes.Clone(secret))}, time.Now())
			require.ErrorIs(t, err, ErrInvalidKey, method)
			require.NotContains(t, err.Error(), "BEGIN")
			require.Equal(t, before, as.TokenCalls())
		}
	}
	require.False(t, isPEMPrivateKey([]byte("s3cr3t-----BEGIN CERTIFICATE-----")))
	require.False(t, isPEMPrivateKey([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")))
}

package oauthflow

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault"
)

// TestMintSendsWhatXOAuth2Sends drives the strict fosite machine server with the real
// x/oauth2 client (clientcredentials.Config, both client authentications) and with Mint:
// the server accepts both, and Mint's request is x/oauth2's, field for field and header
// for header — the proxy signs its own assertions and reads non-standard responses, but a
// plain client credentials grant is exactly the library's.
func TestMintSendsWhatXOAuth2Sends(t *testing.T) {
	srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{Clients: []oauthtest.MachineClient{
		{ID: "basic-client", Secret: "s3cret/+="}, {ID: "post-client", Secret: "s3cret/+=", AuthMethod: "client_secret_post"}}})
	hc := tokenClient(t, "127.0.0.0/8")
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	for _, tc := range []struct {
		id     string
		style  oauth2.AuthStyle
		method TokenAuthMethod
	}{
		{"basic-client", oauth2.AuthStyleInHeader, ClientSecretBasic},
		{"post-client", oauth2.AuthStyleInParams, ClientSecretPost},
	} {
		lib := clientcredentials.Config{ClientID: tc.id, ClientSecret: "s3cret/+=", TokenURL: srv.TokenURL(),
			Scopes: []string{"read"}, AuthStyle: tc.style}
		libTok, err := lib.Token(ctx)
		require.NoError(t, err, tc.id)
		require.True(t, srv.Active(ctx, libTok.AccessToken), "the server is a real one: x/oauth2's token is live")
		libForm, libAuth := srv.LastTokenForm(), srv.LastTokenHeader().Get("Authorization")

		p := machineProvider(AuthModeClientCredentials, tc.method, srv.TokenURL())
		tok, err := Mint(context.Background(), hc, p, ClientCredentials{ClientID: tc.id, ClientSecret: vault.NewSecret("s3cret/+=")},
			vault.Secret{}, time.Now())
		require.NoError(t, err, tc.id)
		require.True(t, srv.Active(ctx, tok.AccessToken.Reveal()))
		require.Equal(t, libForm, srv.LastTokenForm(), "%s: the same form as x/oauth2", tc.id)
		require.Equal(t, libAuth, srv.LastTokenHeader().Get("Authorization"), "%s: the same client authentication", tc.id)
		require.NotNil(t, tok.ExpiresAt)
	}
}

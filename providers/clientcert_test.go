package providers_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/providers"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// mtlsProvider is an oauth2_client_credentials provider authenticating with tls_client_auth.
func mtlsProvider() providers.Request {
	r := machine()
	r.Key = "acme-mtls"
	r.Overrides["token_auth_method"] = raw("tls_client_auth")
	return r
}

func fieldOf(t *testing.T, err error) string {
	t.Helper()
	var p *problem.Problem
	require.ErrorAs(t, err, &p)
	require.NotEmpty(t, p.Errors)
	return p.Errors[0].Field
}

// TestTLSClientAuthProviderSecret: a tls_client_auth provider's client secret (and next
// secret) must be a PEM certificate chain and key valid now (400 invalid_request on the
// field, nothing stored); the view describes the certificate (subject, expiry) and shows
// nothing of the bundle; the next certificate rotates in with the next-secret mechanism;
// a stored secret that does not fit a changed token_auth_method must be replaced in the
// same request.
func TestTLSClientAuthProviderSecret(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			svc, _, clk := newServiceOn(t, dialect)
			clk.t = time.Now()
			ctx, ws := context.Background(), store.DefaultWorkspaceID
			ca := tlstest.NewCA(t, "ADP client CA")
			cur, next := oauthtest.Bundle(ca.Client(t, "acme-2026")), oauthtest.Bundle(ca.Client(t, "acme-2027"))
			secret := func(b []byte) *vault.Secret { s := vault.SecretFromBytes(append([]byte(nil), b...)); return &s }

			for name, bad := range map[string][]byte{
				"a plain secret":      []byte("s3cr3t-not-a-certificate"),
				"a certificate alone": ca.Client(t, "x").CertPEM,
				"a mismatched key":    append(append([]byte(nil), ca.Client(t, "y").CertPEM...), ca.Client(t, "z").KeyPEM...),
			} {
				_, err := svc.Put(ctx, ws, writer, mtlsProvider(), secret(bad))
				require.Equal(t, "invalid_request", code(err), name)
				require.Equal(t, "client_secret", fieldOf(t, err), name)
				require.NotContains(t, err.Error(), "s3cr3t")
				_, err = svc.View(ctx, ws, "acme-mtls")
				require.ErrorIs(t, err, store.ErrNotFound, "nothing stored: %s", name)
			}
			clk.t = time.Now().Add(2 * time.Hour)
			_, err := svc.Put(ctx, ws, writer, mtlsProvider(), secret(cur))
			require.Equal(t, "invalid_request", code(err))
			var p *problem.Problem
			require.ErrorAs(t, err, &p)
			require.Contains(t, p.Errors[0].Detail, "expired at")
			clk.t = time.Now()

			v, err := svc.Put(ctx, ws, writer, mtlsProvider(), secret(cur))
			require.NoError(t, err)
			require.True(t, v.ClientSecretSet)
			require.Empty(t, v.ClientSecretPrefix, "no prefix of a PEM bundle")
			require.NotNil(t, v.ClientCertificate)
			require.Equal(t, "CN=acme-2026", v.ClientCertificate.Subject)
			require.Equal(t, "CN=ADP client CA", v.ClientCertificate.Issuer)
			require.WithinDuration(t, time.Now().Add(time.Hour), v.ClientCertificate.NotAfter, 2*time.Minute)
			js, err := json.Marshal(v)
			require.NoError(t, err)
			require.Contains(t, string(js), `"client_certificate":{"subject":"CN=acme-2026"`)
			require.NotContains(t, string(js), "BEGIN")
			_, client, err := svc.Provider(ctx, ws, "acme-mtls")
			require.NoError(t, err)
			require.Equal(t, string(cur), client.ClientSecret.Reveal(), "sealed and opened as given")

			// Rotation: the next certificate is checked like the current one, shown, promoted.
			_, err = svc.PutWithNext(ctx, ws, writer, mtlsProvider(), nil, secret([]byte("not a bundle")))
			require.Equal(t, "client_secret_next", fieldOf(t, err))
			v, err = svc.PutWithNext(ctx, ws, writer, mtlsProvider(), nil, secret(next))
			require.NoError(t, err)
			require.Equal(t, "CN=acme-2026", v.ClientCertificate.Subject)
			require.Equal(t, "CN=acme-2027", v.ClientCertificateNext.Subject)
			require.True(t, v.ClientSecretNextSet)
			require.Empty(t, v.ClientSecretNextPrefix)
			_, client, err = svc.Provider(ctx, ws, "acme-mtls")
			require.NoError(t, err)
			require.Equal(t, string(next), client.NextSecret.Reveal())
			pv, err := svc.PromoteNextSecret(ctx, ws, "key_1", "acme-mtls")
			require.NoError(t, err)
			require.Equal(t, "CN=acme-2027", pv.ClientCertificate.Subject, "the description moved with the secret")
			require.Nil(t, pv.ClientCertificateNext)

			// A kept secret must fit the method: the bundle is never sent as a secret.
			post := mtlsProvider()
			post.Overrides["token_auth_method"] = raw("client_secret_post")
			_, err = svc.Put(ctx, ws, writer, post, nil)
			require.Equal(t, "client_secret_required", code(err))
			v, err = svc.Put(ctx, ws, writer, post, secret([]byte("plain-secret")))
			require.NoError(t, err)
			require.Nil(t, v.ClientCertificate)
			require.Equal(t, "plai", v.ClientSecretPrefix)
			_, err = svc.Put(ctx, ws, writer, mtlsProvider(), nil)
			require.Equal(t, "client_secret_required", code(err), "a plain secret is no certificate")
			_, err = svc.Put(ctx, ws, writer, mtlsProvider(), secret(cur))
			require.NoError(t, err)
			_, err = svc.Put(ctx, ws, writer, mtlsProvider(), nil)
			require.NoError(t, err, "an update that keeps a fitting certificate")

			// The control plane's import cannot switch the method under a kept certificate.
			doc := []providers.WorkspaceImport{{WorkspaceID: ws, Providers: []providers.Request{post}}}
			err = svc.Import(ctx, "controlplane", 2, doc)
			var ie *providers.ImportError
			require.ErrorAs(t, err, &ie)
			require.ErrorIs(t, err, providers.ErrClientSecretChange)
			got, err := svc.Get(ctx, ws, "acme-mtls")
			require.NoError(t, err)
			require.Equal(t, "tls_client_auth", string(got.TokenAuthMethod), "nothing changed")
			require.NoError(t, svc.Import(ctx, "controlplane", 3, []providers.WorkspaceImport{{WorkspaceID: ws,
				Providers: []providers.Request{mtlsProvider()}}}), "an import that keeps the method")
		})
	}
}

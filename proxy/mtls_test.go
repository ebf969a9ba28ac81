package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// keyLine is a line of a PEM bundle's private key: a sentinel that must reach no log or body.
func keyLine(t *testing.T, bundle []byte) string {
	t.Helper()
	_, key, ok := strings.Cut(string(bundle), "-----BEGIN PRIVATE KEY-----\n")
	require.True(t, ok)
	line, _, _ := strings.Cut(key, "\n")
	require.Len(t, line, 64)
	return line
}

// TestMTLSMachineConnections: client credentials with tls_client_auth (RFC 8705 section
// 2.1) through the API against fosite behind an mTLS listener, on both dialects: the
// provider's certificate and a connection's own mint at creation and are served by the
// token endpoint; a certificate the server does not accept (another subject, another CA)
// or one that is not a certificate at all is 400 invalid_credential with nothing stored;
// a certificate rotated at the provider is picked up from client_secret_next, and a
// connection whose own certificate is refused becomes needs_reauth. No key reaches a log
// line or a response body.
func TestMTLSMachineConnections(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			as := oauthtest.NewMTLS(t, oauthtest.MTLSOptions{ClientID: "adp-app"})
			f := newFlowEnv(t, dialect, oauthtest.Options{AutoLogin: true}, map[string]string{config.EnvOutboundCAFile: as.RootCAFile(t)})
			current, own := as.RegisteredCertificate(t), as.RegisteredCertificate(t)
			intruder, stranger := as.ClientCertificate(t, "intruder"), oauthtest.Bundle(tlstest.NewCA(t, "Other CA").Client(t, "adp-app"))
			next := as.ClientCertificate(t, "adp-2027")
			f.mu.Lock()
			for _, b := range [][]byte{current, own, intruder, stranger, next} {
				f.secrets = append(f.secrets, keyLine(t, b))
			}
			f.mu.Unlock()

			pv := f.h.expect(f.h.do("PUT", "/v1/providers/acme-mtls", bootstrapKey, map[string]any{
				"display_name": "ADP-like", "auth_mode": "oauth2_client_credentials", "client_id": as.ClientID(),
				"client_secret": string(current), "token_url": as.TokenURL(), "token_auth_method": "tls_client_auth",
				"api_base_url": as.URL + "/api", "default_scopes": []string{"read"}}), 200, "")
			require.Equal(t, "CN=adp-app", pv.Body["client_certificate"].(map[string]any)["subject"])

			create := func(endUser string, own []byte) map[string]any {
				body := map[string]any{"provider": "acme-mtls", "end_user_id": endUser}
				if own != nil {
					body["client_credentials"] = map[string]any{"client_id": as.ClientID(), "client_secret": string(own)}
				}
				return body
			}
			// Refused by the server: another subject's certificate, another CA's.
			for name, bad := range map[string][]byte{"another subject": intruder, "another CA": stranger} {
				calls := as.TokenCalls()
				r := f.h.expect(f.h.do("POST", "/v1/connections", f.key, create("u-bad", bad)), 400, "invalid_credential")
				require.Contains(t, r.Body["detail"], "invalid_client", name)
				require.Equal(t, calls+1, as.TokenCalls(), "one mint tried: %s", name)
			}
			// Not a certificate at all: like a key that cannot sign, nothing sent.
			calls := as.TokenCalls()
			f.h.expect(f.h.do("POST", "/v1/connections", f.key, create("u-bad", []byte("SENTINEL-not-a-bundle"))), 400, "invalid_request")
			require.Equal(t, calls, as.TokenCalls())
			require.Zero(t, f.connections())

			ids := map[string]string{}
			for name, bundle := range map[string][]byte{"provider": nil, "own": own} {
				r := f.h.expect(f.h.do("POST", "/v1/connections", f.key, create("u-"+name, bundle)), 201, "")
				require.Equal(t, "active", r.Body["status"], name)
				ids[name] = r.Body["id"].(string)
				tok := f.h.expect(f.h.do("GET", "/v1/connections/"+ids[name]+"/token", f.key, nil), 200, "")
				require.Equal(t, "oauth2_client_credentials", tok.Body["credential_type"])
				require.True(t, as.Active(ctx, tok.Body["access_token"].(string)), name)
				require.Equal(t, "CN=adp-app", as.LastPeerSubject())
				require.NotContains(t, as.LastTokenForm(), "client_secret")
			}

			// The certificate is rotated at the provider: the provider's next certificate is
			// tried after invalid_client; a connection's own old one needs re-authorization.
			as.SetSubjectDN("CN=adp-2027")
			pv = f.h.expect(f.h.do("PUT", "/v1/providers/acme-mtls", bootstrapKey, map[string]any{
				"display_name": "ADP-like", "auth_mode": "oauth2_client_credentials", "client_id": as.ClientID(),
				"client_secret_next": string(next), "token_url": as.TokenURL(), "token_auth_method": "tls_client_auth",
				"api_base_url": as.URL + "/api", "default_scopes": []string{"read"}}), 200, "")
			require.Equal(t, "CN=adp-2027", pv.Body["client_certificate_next"].(map[string]any)["subject"])
			f.h.expect(f.h.do("POST", "/v1/connections/"+ids["provider"]+"/refresh", f.key, nil), 200, "")
			require.Equal(t, "CN=adp-2027", as.LastPeerSubject())
			f.h.expect(f.h.do("POST", "/v1/connections/"+ids["own"]+"/refresh", f.key, nil), 409, "needs_reauth")
			f.h.expect(f.h.do("GET", "/v1/connections/"+ids["own"]+"/token", f.key, nil), 409, "needs_reauth")
			f.noLeaks()
		})
	}
}

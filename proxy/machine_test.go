package proxy_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// machineKey is one RSA key for the machine-grant tests (2048 bits is slow under -race).
var machineKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

func machinePEM(t *testing.T) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(machineKey)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// TestMachineConnections: POST /v1/connections makes client-credentials connections
// (client_secret_basic, client_secret_post, private_key_jwt; the provider's client and the
// end user's own) and jwt_bearer ones (a generated service-account key) by minting once
// against fosite; a refused credential is 400 invalid_credential with nothing stored; the
// token endpoint serves the minted token as "credential_type":"<auth_mode>"; a re-mint
// refused with invalid_client makes the connection needs_reauth (409).
func TestMachineConnections(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			f := newFlow(t, dialect, oauthtest.Options{AutoLogin: true})
			srv := oauthtest.NewMachine(t, oauthtest.MachineOptions{AnonymousJWTBearer: true,
				Clients: []oauthtest.MachineClient{
					{ID: "app", Secret: "app-secret"},
					{ID: "own", Secret: "own-secret"},
					{ID: "post-app", Secret: "post-secret", AuthMethod: "client_secret_post"},
					{ID: "jwt-app", AuthMethod: "private_key_jwt", PublicKey: machineKey.Public()},
				},
				Issuers: []oauthtest.TrustedIssuer{{Issuer: "bot@example.iam", Subject: "bot@example.iam", PublicKey: machineKey.Public(), KeyID: "k1"}}})
			provider := func(key, mode, method, clientID, secret string) {
				body := map[string]any{"display_name": key, "auth_mode": mode, "token_url": srv.TokenURL(),
					"api_base_url": srv.URL + "/api", "token_auth_method": method, "default_scopes": []string{"read"}}
				if clientID != "" {
					body["client_id"], body["client_secret"] = clientID, secret
				}
				f.h.expect(f.h.do("PUT", "/v1/providers/"+key, bootstrapKey, body), 200, "")
			}
			provider("m2m", "oauth2_client_credentials", "client_secret_basic", "app", "app-secret")
			provider("m2m-post", "oauth2_client_credentials", "client_secret_post", "post-app", "post-secret")
			provider("m2m-jwt", "oauth2_client_credentials", "private_key_jwt", "jwt-app", machinePEM(t))
			provider("sa", "jwt_bearer", "none", "", "")

			// Refused credentials: 400 invalid_credential naming the provider's code, nothing stored.
			calls := srv.TokenCalls()
			bad := f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "m2m", "end_user_id": "u",
				"client_credentials": map[string]any{"client_id": "own", "client_secret": "wrong-SECRET-xyz"}}), 400, "invalid_credential")
			require.Contains(t, bad.Body["detail"], "invalid_client")
			require.NotContains(t, bad.Raw, "wrong-SECRET-xyz")
			require.Equal(t, calls+1, srv.TokenCalls(), "one mint tried")
			f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "sa", "end_user_id": "u",
				"service_account": map[string]any{"client_email": "bot@example.iam", "private_key": "nope"}}), 400, "invalid_request")
			f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "sa", "end_user_id": "u"}), 400, "invalid_request")
			f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "m2m", "end_user_id": "u",
				"service_account": map[string]any{"client_email": "x"}}), 400, "invalid_request")
			require.Zero(t, f.connections())

			sa, err := json.Marshal(map[string]string{"type": "service_account", "client_email": "bot@example.iam",
				"private_key_id": "k1", "private_key": machinePEM(t), "token_uri": "https://attacker.example/token"})
			require.NoError(t, err)
			for name, body := range map[string]map[string]any{
				"provider's client, basic": {"provider": "m2m"},
				"provider's client, post":  {"provider": "m2m-post"},
				"private_key_jwt":          {"provider": "m2m-jwt"},
				"own client":               {"provider": "m2m", "client_credentials": map[string]any{"client_id": "own", "client_secret": "own-secret"}},
				"service account":          {"provider": "sa", "service_account": json.RawMessage(sa)},
			} {
				body["end_user_id"] = "u-" + name
				before := srv.Mints()
				r := f.h.expect(f.h.do("POST", "/v1/connections", f.key, body), 201, "")
				require.Equal(t, before+1, srv.Mints(), name)
				id := r.Body["id"].(string)
				mode := map[bool]string{true: "jwt_bearer", false: "oauth2_client_credentials"}[body["provider"] == "sa"]
				require.Equal(t, mode, r.Body["auth_mode"], name)
				require.Equal(t, "active", r.Body["status"])
				require.NotEmpty(t, r.Body["expires_at"])
				tok := f.h.expect(f.h.do("GET", "/v1/connections/"+id+"/token", f.key, nil), 200, "")
				require.Equal(t, mode, tok.Body["credential_type"], name)
				require.Equal(t, "Bearer", tok.Body["token_type"])
				require.NotEmpty(t, tok.Body["expires_at"])
				require.Equal(t, []any{"read"}, tok.Body["scopes"])
				require.True(t, srv.Active(ctx, tok.Body["access_token"].(string)), name)
				require.Equal(t, before+1, srv.Mints(), "served from the row: %s", name)
				fwd := f.h.expect(f.h.do("GET", "/v1/proxy/"+id+"/me", f.key, nil), 200, "") // forwarded with the minted token
				require.Equal(t, "read", fwd.Body["scope"], name)
			}
			require.Equal(t, 5, f.connections())

			// The provider's client is rotated at the provider: the next (forced) mint is
			// refused with invalid_client and the connection needs re-authorization.
			r := f.h.expect(f.h.do("POST", "/v1/connections", f.key, map[string]any{"provider": "m2m", "end_user_id": "rotated"}), 201, "")
			id := r.Body["id"].(string)
			srv.SetClientSecret(t, "app", "rotated-at-the-provider")
			f.h.expect(f.h.do("POST", "/v1/connections/"+id+"/refresh", f.key, nil), 409, "needs_reauth")
			f.h.expect(f.h.do("GET", "/v1/connections/"+id+"/token", f.key, nil), 409, "needs_reauth")
			got := f.h.expect(f.h.do("GET", "/v1/connections/"+id, f.key, nil), 200, "")
			require.Equal(t, "needs_reauth", got.Body["status"])
		})
	}
}

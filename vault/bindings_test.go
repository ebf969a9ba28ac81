package vault

import (
	"bytes"
	"testing"
)

// TestBindingsEncodeAsStored pins the associated data of every binding constructor to
// the literal Binding it stands for: values already stored were sealed under these bytes,
// so a constructor that encodes differently would leave them unopenable.
func TestBindingsEncodeAsStored(t *testing.T) {
	header := []byte{EnvelopeV1, 5, 'd', 'e', 'k', '_', '1'}
	for name, tc := range map[string]struct {
		got, stored Binding
	}{
		"access token":   {AccessTokenBinding("ws_1", "conn_1"), Binding{WorkspaceID: "ws_1", OwnerID: "conn_1", Field: "access_token"}},
		"refresh token":  {RefreshTokenBinding("ws_1", "conn_1"), Binding{WorkspaceID: "ws_1", OwnerID: "conn_1", Field: "refresh_token"}},
		"api key":        {APIKeyBinding("ws_1", "conn_1"), Binding{WorkspaceID: "ws_1", OwnerID: "conn_1", Field: "api_key"}},
		"pkce verifier":  {PKCEVerifierBinding("ws_1", "cs_1"), Binding{WorkspaceID: "ws_1", OwnerID: "cs_1", Field: "pkce_verifier"}},
		"client secret":  {ClientSecretBinding("ws_1", "prov_1"), Binding{WorkspaceID: "ws_1", OwnerID: "prov_1", Field: "client_secret"}},
		"webhook secret": {WebhookSecretBinding("ws_1"), Binding{WorkspaceID: "ws_1", OwnerID: "ws_1", Field: "webhook_secret"}},
		"proxy key":      {ProxyKeyBinding("pk_state_1"), Binding{WorkspaceID: "_system", OwnerID: "pk_state_1", Field: "key"}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := tc.got.validate(); err != nil {
				t.Fatalf("constructor yields an invalid binding: %v", err)
			}
			for _, purpose := range []Purpose{PurposeCredentials, PurposeClientSecrets} {
				got := appendAAD(nil, header, purpose, tc.got)
				want := appendAAD(nil, header, purpose, tc.stored)
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: associated data %x, stored values use %x", purpose, got, want)
				}
			}
		})
	}
}

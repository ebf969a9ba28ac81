package vault

// The bindings of every sealed value the proxy stores. Each part of a Binding goes into
// the associated data, so these names and the system workspace id are part of every
// stored ciphertext: changing one makes the values sealed under it unopenable.
// bindings_test.go pins the encoded associated data of each constructor.

// Field names of sealed values.
const (
	fieldAccessToken   = "access_token"
	fieldRefreshToken  = "refresh_token"
	fieldAPIKey        = "api_key"
	fieldPKCEVerifier  = "pkce_verifier"
	fieldClientSecret  = "client_secret"
	fieldWebhookSecret = "webhook_secret"
	fieldProxyKey      = "key"
)

// SystemWorkspaceID is the workspace that owns the proxy's own keys (state, API-key hash,
// webhook and checkpoint key sets), sealed under the client-secret keyring.
const SystemWorkspaceID = "_system"

// AccessTokenBinding is where a connection's sealed OAuth access token belongs.
func AccessTokenBinding(workspaceID, connectionID string) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: connectionID, Field: fieldAccessToken}
}

// RefreshTokenBinding is where a connection's sealed OAuth refresh token belongs.
func RefreshTokenBinding(workspaceID, connectionID string) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: connectionID, Field: fieldRefreshToken}
}

// APIKeyBinding is where a connection's sealed API key belongs.
func APIKeyBinding(workspaceID, connectionID string) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: connectionID, Field: fieldAPIKey}
}

// PKCEVerifierBinding is where a connect session's sealed PKCE code verifier belongs.
func PKCEVerifierBinding(workspaceID, sessionID string) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: sessionID, Field: fieldPKCEVerifier}
}

// ClientSecretBinding is where a provider configuration's sealed OAuth client secret
// belongs; providerID is the configuration's row id.
func ClientSecretBinding(workspaceID, providerID string) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: providerID, Field: fieldClientSecret}
}

// WebhookSecretBinding is where a workspace's sealed webhook signing secret belongs; the
// workspace is its own owner.
func WebhookSecretBinding(workspaceID string) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: workspaceID, Field: fieldWebhookSecret}
}

// ProxyKeyBinding is where one of the proxy's own sealed keys belongs (kid is the key's id).
func ProxyKeyBinding(kid string) Binding {
	return Binding{WorkspaceID: SystemWorkspaceID, OwnerID: kid, Field: fieldProxyKey}
}

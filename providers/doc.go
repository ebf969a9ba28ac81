// Package providers is the one home of a workspace's provider configurations: the merge
// of a catalog template with the caller's fields (Build), their validation (every URL an
// exact allowlist entry or a public https endpoint, URLPolicy), the defaults (callback
// URL from the public URL, the template's default scopes, auth mode oauth2), persistence
// with its audit event, the API's view of a stored provider, resolution of a
// connection's provider (the workspace's configuration, else the catalog's api_key
// template) and the opening of a provider's client secret (RFC 6749 section 2.3.1).
//
// The providers API (PUT /v1/providers/{key}) and the control-plane import both go
// through Build, so an imported configuration is validated exactly like one the API
// takes. Both also apply the origin rules (origins.go), decided under the provider's row
// lock: a change of a provider's endpoint origins needs a Caller with Admin (and, for
// oauth2, the client secret) and puts its connections into needs_reauth in the same
// transaction; the import refuses it, and any client secret, whole (ErrOriginChange,
// ErrClientSecretChange). The forwarding proxy, the connect flows, revocation and the refresher resolve
// providers here.
//
// It is its own package rather than part of oauthflow because it persists (through the
// narrow Store interface it declares, which *store.Store satisfies) and opens client
// secrets with the client_secrets keyring, while oauthflow stores nothing and holds no
// key. It does not import controlplane: internal/app turns a control-plane document into
// Imports.
package providers

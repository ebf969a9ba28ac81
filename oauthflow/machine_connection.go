package oauthflow

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Machine connections (oauth2_client_credentials, jwt_bearer, github_app) are created with
// POST /v1/connections: with the end user's own client ("client_credentials"), a
// service-account key ("service_account"), or nothing (the provider's client). The
// credential is proved before anything is stored: one token is minted with it, and a
// refusal is 400 invalid_credential (the provider's error code in the detail), nothing
// written. Then the connection, its sealed grant secret (bound to the token endpoint),
// its sealed first token (bound to the API origins, like an OAuth access token) and its
// connection.created event are stored in one transaction.

// MachineStore stores a new connection with its credential and audit event.
type MachineStore interface {
	CreateConnection(ctx context.Context, c store.Connection, cred store.Credential, evs ...audit.Event) error
}

// MachineProviders resolves a workspace's provider with its client credentials (the
// providers service: a catalog template serves unconfigured where its connections bring
// their own credential).
type MachineProviders interface {
	Provider(ctx context.Context, workspaceID, key string) (Provider, ClientCredentials, error)
}

// MachineDeps are what Machines drives.
type MachineDeps struct {
	Store     MachineStore
	Providers MachineProviders
	Creds     Sealer
	// ClientFor is the outbound token client for a provider (its TLS floor and pins; no
	// redirects, SSRF-guarded).
	ClientFor func(Provider) (*http.Client, error)
	Now       func() time.Time // nil: time.Now
}

// Machines creates machine connections. Safe for concurrent use.
type Machines struct {
	deps  MachineDeps
	audit audit.Appender // records origin-check refusals: the store, when it is an Appender
}

// NewMachines checks deps and builds the service.
func NewMachines(deps MachineDeps) (*Machines, error) {
	if deps.Store == nil || deps.Providers == nil || deps.Creds == nil || deps.ClientFor == nil {
		return nil, errors.New("oauthflow: Store, Providers, Creds and ClientFor are required")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	m := &Machines{deps: deps}
	m.audit, _ = deps.Store.(audit.Appender)
	return m, nil
}

// MachineConnect is a request for a machine connection. At most one of ClientCredentials
// (an oauth2_client_credentials connection's own client) and ServiceAccount (a jwt_bearer
// connection's key, the JSON as given) is set; neither when the provider's client mints.
type MachineConnect struct {
	WorkspaceID, Provider, EndUserID string
	Actor                            string // the API key's id
	ClientCredentials                *GrantClient
	ServiceAccount                   vault.Secret
	ConnectionConfig, Metadata       map[string]string
}

// Create proves the credential with one mint and stores the connection (see the file
// comment). It returns the stored connection.
func (m *Machines) Create(ctx context.Context, in MachineConnect) (store.Connection, error) {
	p, client, err := m.deps.Providers.Provider(ctx, in.WorkspaceID, in.Provider)
	if errors.Is(err, store.ErrNotFound) {
		return store.Connection{}, problem.ErrInvalidRequest.WithField("provider", "not a provider of this workspace or the catalog")
	}
	if err != nil {
		return store.Connection{}, err
	}
	grant, err := machineGrant(p, in, client)
	if err != nil {
		return store.Connection{}, err
	}
	defer grant.Wipe()
	if err := p.CheckMetadata(in.Metadata); err != nil {
		return store.Connection{}, err
	}
	filled, err := p.ForConnection(in.ConnectionConfig, in.Metadata)
	if err != nil {
		return store.Connection{}, err
	}
	provClient := client // the provider's, for revokeOrphan
	usesClient := filled.MintUsesProviderClient(!grant.IsZero())
	if usesClient {
		use := vault.Use{WorkspaceID: in.WorkspaceID, Actor: in.Actor, Purpose: vault.UseMint}
		if err := vault.CheckOrigin(ctx, m.audit, use, filled.TokenURL, client.SecretBindings()...); err != nil {
			return store.Connection{}, err
		}
	} else {
		client = ClientCredentials{ClientID: client.ClientID}
	}
	hc, err := m.deps.ClientFor(filled)
	if err != nil {
		return store.Connection{}, err
	}
	now := m.deps.Now().UTC()
	tok, err := Mint(ctx, hc, filled, client, grant, now)
	if err != nil {
		return store.Connection{}, mintProblem(err)
	}
	defer tok.AccessToken.Wipe()
	conn, err := m.store(ctx, in, p, tok, grant, now)
	if err != nil {
		m.revokeOrphan(ctx, in, filled, provClient, grant, tok) // minted, not stored (machine_orphan.go)
		return store.Connection{}, err
	}
	return conn, nil
}

// machineGrant checks the request's credential against p's mode and returns the grant
// secret to seal (zero when the provider's client mints).
func machineGrant(p Provider, in MachineConnect, client ClientCredentials) (vault.Secret, error) {
	if !p.AuthMode.Minted() {
		return vault.Secret{}, problem.ErrInvalidRequest.WithField("provider", "not an oauth2_client_credentials, jwt_bearer or github_app provider")
	}
	own, key := in.ClientCredentials != nil, !in.ServiceAccount.IsZero()
	switch p.AuthMode {
	case AuthModeClientCredentials:
		if key {
			return vault.Secret{}, problem.ErrInvalidRequest.WithField("service_account", "is for jwt_bearer providers")
		}
		if !own {
			if client.ClientID == "" || client.ClientSecret.IsZero() {
				return vault.Secret{}, problem.ErrInvalidRequest.WithField("client_credentials",
					"required: the provider has no client configured in this workspace")
			}
			return vault.Secret{}, nil
		}
		c := *in.ClientCredentials
		if _, err := ParseGrantClient(c.Sealed().Bytes()); err != nil {
			return vault.Secret{}, problem.ErrInvalidRequest.WithField("client_credentials", "client_id (1-256 printable characters) and client_secret (at most 16 KiB) are required")
		}
		if p.TokenAuthMethod == PrivateKeyJWT {
			if _, err := parseClientKey(c.ClientSecret.Bytes()); err != nil {
				return vault.Secret{}, problem.ErrInvalidRequest.WithField("client_credentials", "client_secret must be the client's private key (PEM, RSA 2048+ or EC P-256) for this provider")
			}
		}
		return c.Sealed(), nil
	case AuthModeJWTBearer:
		if own {
			return vault.Secret{}, problem.ErrInvalidRequest.WithField("client_credentials", "is for oauth2_client_credentials providers")
		}
		if !key {
			return vault.Secret{}, problem.ErrInvalidRequest.WithField("service_account", "required for jwt_bearer providers")
		}
		if _, err := ParseServiceAccountKey(in.ServiceAccount.Bytes()); err != nil {
			return vault.Secret{}, problem.ErrInvalidRequest.WithField("service_account", "a service-account JSON key with client_email (or client_id) and private_key (PEM, RSA 2048+ or EC P-256)")
		}
		return vault.SecretFromBytes(append([]byte(nil), in.ServiceAccount.Bytes()...)), nil
	default: // github_app: the workspace's app key; the installation is connection_config
		if own || key {
			return vault.Secret{}, problem.ErrInvalidRequest.WithDetail("a github_app connection takes installation_id, no client_credentials or service_account")
		}
		return vault.Secret{}, nil
	}
}

// store seals and stores a connection whose first token tok was minted at now.
func (m *Machines) store(ctx context.Context, in MachineConnect, p Provider, tok Token, grant vault.Secret, now time.Time) (store.Connection, error) {
	// A token response's metadata (Salesforce's instance_url) joins the application's, and
	// may be the connection's API base: the origins are those of the provider filled with
	// both.
	md := maps.Clone(in.Metadata)
	if len(tok.Metadata) > 0 {
		if md == nil {
			md = map[string]string{}
		}
		maps.Copy(md, tok.Metadata)
	}
	filled, err := p.ForConnection(in.ConnectionConfig, md)
	if err != nil {
		return store.Connection{}, err
	}
	scopes := tok.Scopes
	if scopes == nil {
		scopes = p.DefaultScopes
	}
	conn := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: in.WorkspaceID, Provider: in.Provider,
		EndUserID: in.EndUserID, AuthMode: string(p.AuthMode), Status: store.StatusActive,
		Scopes: store.Strings(append([]string{}, scopes...)), CredentialPrefix: tok.AccessToken.Prefix(8),
		ExpiresAt: tok.ExpiresAt, NextRefreshAt: tok.ExpiresAt, // the refresher mints the next one inside the lead window
		Version: 1, CreatedAt: now, UpdatedAt: now,
		ConnectionConfig: store.JSONObject(in.ConnectionConfig), Metadata: store.JSONObject(md)}
	access, grantOrigins := filled.AccessTokenOrigins(), filled.GrantSecretOrigins()
	cred := store.Credential{ConnectionID: conn.ID, WorkspaceID: in.WorkspaceID, TokenType: tok.TokenType, UpdatedAt: now,
		AccessOrigins: store.StoredOrigins(access)}
	if cred.AccessToken, err = m.deps.Creds.Seal(ctx, store.AccessTokenBinding(conn, access), tok.AccessToken); err != nil {
		return store.Connection{}, err
	}
	if !grant.IsZero() {
		if cred.GrantSecret, err = m.deps.Creds.Seal(ctx, store.GrantSecretBinding(conn, grantOrigins), grant); err != nil {
			return store.Connection{}, err
		}
		cred.GrantOrigins = store.StoredOrigins(grantOrigins)
	}
	ev := audit.Event{WorkspaceID: in.WorkspaceID, Type: audit.ConnectionCreated, Actor: in.Actor, ConnectionID: conn.ID,
		Outcome: audit.Success, Data: audit.Data("provider", in.Provider, "auth_mode", string(p.AuthMode),
			"client", map[bool]string{true: "connection", false: "provider"}[!grant.IsZero()])}
	if err := m.deps.Store.CreateConnection(ctx, conn, cred, ev); err != nil {
		return store.Connection{}, err
	}
	return conn, nil
}

// mintProblem maps a failed first mint: the provider refused the credential (a 4xx but
// 429) → 400 invalid_credential naming its OAuth error code; a key the proxy cannot
// sign with → 400 invalid_request; the provider unavailable, rate limiting or
// unreachable → 502 bad_gateway (504 on a timeout), as a forwarded call.
func mintProblem(err error) error {
	var pe *ProviderError
	switch {
	case errors.As(err, &pe) && pe.Status >= 400 && pe.Status < 500 && pe.Status != http.StatusTooManyRequests,
		errors.As(err, &pe) && pe.Status >= 200 && pe.Status < 300: // a 200 carrying an error (Slack-style)
		return problem.ErrInvalidCredential.WithDetail(fmt.Sprintf("the provider refused the credential: %s", pe.Code)).WithCause(err)
	case errors.As(err, &pe):
		return problem.ErrBadGateway.WithDetail(fmt.Sprintf("the provider could not mint a token now (HTTP %d)", pe.Status)).WithCause(err)
	case errors.Is(err, ErrInvalidKey), errors.Is(err, ErrInvalidGrantSecret):
		return problem.ErrInvalidRequest.WithDetail("the credential cannot be used to sign or authenticate").WithCause(err)
	case errors.Is(err, ErrInvalidProvider):
		return problem.ErrInvalidRequest.WithDetail("the provider's configuration cannot mint tokens").WithCause(err)
	case errors.Is(err, ErrMalformedTokenResponse):
		return problem.ErrBadGateway.WithDetail("the provider's token response was malformed").WithCause(err)
	}
	if errors.Is(err, outbound.ErrUnsafeURL) {
		return problem.ErrUnsafeURLUpstream.WithCause(err)
	}
	return problem.Upstream(outbound.Redact(err))
}

// KeyJSON is a JSON value kept whole, unparsed, as a Secret: a service-account key given as
// an object (or as a string holding one) in a request body.
type KeyJSON struct{ vault.Secret }

// UnmarshalJSON keeps an object's bytes, or a string's content; null leaves it empty.
func (k *KeyJSON) UnmarshalJSON(data []byte) error {
	switch {
	case string(data) == "null":
		k.Secret = vault.Secret{}
	case len(data) > 0 && data[0] == '{':
		k.Secret = vault.SecretFromBytes(append([]byte(nil), data...))
	case len(data) > 0 && data[0] == '"':
		return k.Secret.UnmarshalJSON(data)
	default:
		return errors.New("oauthflow: a service-account key must be a JSON object") // never quotes the input
	}
	return nil
}

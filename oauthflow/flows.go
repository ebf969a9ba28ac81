package oauthflow

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// The connect flows as a service (API.md "Connect", docs/oauth.md): a connect session is
// created for an application (CreateSession, Reconnect), shown to the end user's browser
// (Preview: the connect page, flow_page.go), started by the page's form (Start: state,
// PKCE verifier, browser binding, authorization URL) and completed
// at the callback (Complete: MAC'd state, single use, RFC 9207 issuer, code exchange,
// sealed tokens, the connection with its audit event). The HTTP layer only parses,
// sets the flow cookie, redirects and renders; everything it needs decided is decided
// here, once.
//
// The session id in the connect URL is the browser's capability to start the flow, once,
// by the POST of the connect page's form.
// The state, PKCE verifier and browser nonce are made when the browser starts it: the
// store keeps the state's SHA-256, the verifier sealed, and an HMAC of the nonce. The
// state and the session id carry their own MACs, checked before the store is asked
// (FlowKeys).

// FlowStore is what the connect flows need of the store (vault/store satisfies it).
type FlowStore interface {
	Connection(ctx context.Context, workspaceID, id string) (store.Connection, error)
	Workspace(ctx context.Context, id string) (store.Workspace, error)
	CreateConnectSession(ctx context.Context, cs store.ConnectSession) error
	ConnectSession(ctx context.Context, id string) (store.ConnectSession, error)
	StartConnectSession(ctx context.Context, id string, st store.SessionStart, now time.Time) error
	ConnectSessionByState(ctx context.Context, stateHash []byte) (store.ConnectSession, error)
	ConsumeConnectSession(ctx context.Context, id string, stateHash []byte, now time.Time) error
	SaveOAuthConnection(ctx context.Context, conn store.Connection, cred store.Credential, reconnect bool,
		evs ...audit.Event) (store.Connection, error)
	ConnectWithSession(ctx context.Context, sessionID string, c store.Connection, cred store.Credential, now time.Time,
		evs ...audit.Event) error
}

var _ FlowStore = (*store.Store)(nil)

// FlowConfig is a workspace's configuration of one provider as the connect flows use it.
type FlowConfig struct {
	Provider
	ClientID     string
	Scopes       []string // a session that names no scopes asks for these
	CallbackURLs []string // exact-match allowlist; the first is the default
	ReturnURLs   []string // exact-match allowlist; the first is the default, none means a result page
}

// FlowProviders resolves a workspace's provider configurations.
type FlowProviders interface {
	// FlowConfig returns the workspace's configuration of provider key (store.ErrNotFound
	// when it has none).
	FlowConfig(ctx context.Context, workspaceID, key string) (FlowConfig, error)
	// ClientCredentials returns the client id and the opened client secret of the
	// workspace's provider key (no secret for a public client).
	ClientCredentials(ctx context.Context, workspaceID, key string) (ClientCredentials, error)
}

// FlowKeys makes and checks the flows' MAC'd values under the deployment's state keys. A
// check never reads the database because of the value it checks; an error means the key
// set could not be loaded at all.
type FlowKeys interface {
	NewSessionID(ctx context.Context) (string, error)
	CheckSessionID(ctx context.Context, id string) (bool, error)
	// NewState returns a state and its SHA-256 (what the store keeps).
	NewState(ctx context.Context) (string, []byte, error)
	CheckState(ctx context.Context, state string) (bool, error)
	// BindBrowser returns the stored binding of session sessionID to the browser nonce.
	BindBrowser(ctx context.Context, sessionID, nonce string) ([]byte, error)
	VerifyBrowser(ctx context.Context, sessionID, nonce string, stored []byte) (bool, error)
	// FormToken returns the connect page's form token for session sessionID;
	// CheckFormToken checks one (hmac.Equal).
	FormToken(ctx context.Context, sessionID string) (string, error)
	CheckFormToken(ctx context.Context, sessionID, token string) (bool, error)
}

// Sealer seals and opens the flows' secrets (vault.Keyring of purpose credentials).
type Sealer interface {
	Seal(ctx context.Context, b vault.Binding, plaintext vault.Secret) ([]byte, error)
	Open(ctx context.Context, b vault.Binding, envelope []byte) (vault.Secret, error)
}

// FlowDeps are what the connect flows drive.
type FlowDeps struct {
	Store     FlowStore
	Providers FlowProviders
	Keys      FlowKeys
	Creds     Sealer
	// ClientFor is the outbound client for a provider's token endpoint: SSRF-guarded,
	// no redirects, the provider's TLS floor and pins.
	ClientFor func(Provider) (*http.Client, error)
}

// FlowOption configures Flows.
type FlowOption func(*Flows)

// WithFlowLogger sets the logger (default: discard). Nothing secret is ever logged.
func WithFlowLogger(l *slog.Logger) FlowOption { return func(f *Flows) { f.log = l } }

// WithFlowClock injects the clock.
func WithFlowClock(now func() time.Time) FlowOption { return func(f *Flows) { f.now = now } }

// Flows runs the connect flows. Safe for concurrent use.
type Flows struct {
	store     FlowStore
	providers FlowProviders
	keys      FlowKeys
	creds     Sealer
	clientFor func(Provider) (*http.Client, error)
	audit     audit.Appender // records origin-check refusals: the store, when it is an Appender
	log       *slog.Logger
	now       func() time.Time
}

// NewFlows checks deps and builds the flows service.
func NewFlows(deps FlowDeps, opts ...FlowOption) (*Flows, error) {
	if deps.Store == nil || deps.Providers == nil || deps.Keys == nil || deps.Creds == nil || deps.ClientFor == nil {
		return nil, errors.New("oauthflow: Store, Providers, Keys, Creds and ClientFor are required")
	}
	f := &Flows{store: deps.Store, providers: deps.Providers, keys: deps.Keys, creds: deps.Creds, clientFor: deps.ClientFor,
		log: slog.New(slog.DiscardHandler), now: time.Now}
	f.audit, _ = deps.Store.(audit.Appender)
	for _, o := range opts {
		o(f)
	}
	if f.log == nil || f.now == nil {
		return nil, errors.New("oauthflow: nil clock or logger")
	}
	return f, nil
}

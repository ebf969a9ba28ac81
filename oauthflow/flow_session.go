package oauthflow

import (
	"context"
	"errors"
	"strings"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// SessionRequest is what an application asks a connect session for. Empty URLs take the
// provider's first allowlisted one; nil Scopes take the provider's.
type SessionRequest struct {
	WorkspaceID string
	Provider    string
	EndUserID   string
	CallbackURL string
	ReturnURL   string
	Scopes      []string
	// ConnectionConfig are the values of the provider's connection_config parameters; when
	// the provider needs some and none are given, the end user types them on the connect
	// page.
	ConnectionConfig map[string]string
}

// CreateSession records a new connect session for r. The provider must be an OAuth
// provider of the workspace with a client id and no placeholders left in its URLs; the
// callback and return URLs must be exactly entries of its allowlists.
func (f *Flows) CreateSession(ctx context.Context, r SessionRequest) (store.ConnectSession, error) {
	return f.createSession(ctx, r, "")
}

// Reconnect records a connect session that restores the OAuth connection id of the
// workspace: same provider and end user, and its scopes unless r names others.
func (f *Flows) Reconnect(ctx context.Context, workspaceID, id string, r SessionRequest) (store.ConnectSession, error) {
	conn, err := f.store.Connection(ctx, workspaceID, id)
	if err != nil {
		return store.ConnectSession{}, err
	}
	if conn.AuthMode != string(AuthModeOAuth2) {
		return store.ConnectSession{}, problem.ErrInvalidRequest.WithDetail("only OAuth connections can be reconnected")
	}
	r.WorkspaceID, r.Provider, r.EndUserID = workspaceID, conn.Provider, conn.EndUserID
	if r.Scopes == nil && len(conn.Scopes) > 0 {
		r.Scopes = conn.Scopes
	}
	if r.ConnectionConfig == nil {
		r.ConnectionConfig = store.ParseJSONObject(conn.ConnectionConfig)
	}
	return f.createSession(ctx, r, conn.ID)
}

func (f *Flows) createSession(ctx context.Context, r SessionRequest, reconnectID string) (store.ConnectSession, error) {
	cfg, err := f.providers.FlowConfig(ctx, r.WorkspaceID, r.Provider)
	if errors.Is(err, store.ErrNotFound) {
		return store.ConnectSession{}, problem.ErrInvalidRequest.WithField("provider", "no such provider in this workspace")
	}
	if err != nil {
		return store.ConnectSession{}, err
	}
	apiKey := cfg.AuthMode.Typed() && reconnectID == ""
	switch {
	case apiKey:
		// The hosted page asks the end user for the key, or the username and password
		// (SubmitCredential): no provider round trip.
		if r.CallbackURL != "" {
			return store.ConnectSession{}, problem.ErrInvalidCallbackURL.WithDetail("an api_key or basic provider's session has no callback_url")
		}
	case cfg.AuthMode != AuthModeOAuth2 || cfg.ClientID == "":
		return store.ConnectSession{}, problem.ErrInvalidRequest.WithField("provider", "not an oauth2 provider with a client_id, nor an api_key or basic provider")
	}
	// connection_config: checked now when given (400 invalid_connection_config), else
	// typed by the end user on the connect page when the provider needs it.
	if len(r.ConnectionConfig) > 0 || !cfg.NeedsConnectionConfig() {
		if _, err := cfg.Provider.Expand(r.ConnectionConfig); err != nil {
			return store.ConnectSession{}, err
		}
	}
	var callback string
	if !apiKey {
		var ok bool
		callback, ok = pickURL(r.CallbackURL, cfg.CallbackURLs)
		if !ok || callback == "" {
			return store.ConnectSession{}, problem.ErrInvalidCallbackURL.WithDetail("callback_url must be one of the provider's callback_urls, exactly")
		}
	}
	ret, ok := pickURL(r.ReturnURL, cfg.ReturnURLs)
	if !ok {
		return store.ConnectSession{}, problem.ErrInvalidReturnURL.WithDetail("return_url must be one of the provider's return_urls, exactly")
	}
	scopes := r.Scopes
	if scopes == nil {
		scopes = cfg.Scopes
	}
	if err := checkScopes(scopes); err != nil {
		return store.ConnectSession{}, err
	}
	id, err := f.keys.NewSessionID(ctx) // MAC'd: Start checks it before any lookup
	if err != nil {
		return store.ConnectSession{}, err
	}
	now := f.now().UTC()
	cs := store.ConnectSession{ID: id, WorkspaceID: r.WorkspaceID, Provider: r.Provider,
		EndUserID: r.EndUserID, CallbackURL: callback, ReturnURL: ret, Scopes: store.Strings(scopes),
		ReconnectConnectionID: reconnectID, ConnectionConfig: store.JSONObject(r.ConnectionConfig),
		ExpiresAt: now.Add(SessionLifetime), CreatedAt: now}
	if err := f.store.CreateConnectSession(ctx, cs); err != nil {
		return store.ConnectSession{}, err
	}
	return cs, nil
}

// pickURL applies an exact-match allowlist: an empty request takes the first entry (or
// none when the list is empty); anything else must be byte for byte an entry.
func pickURL(requested string, allowlist []string) (string, bool) {
	if requested == "" {
		if len(allowlist) == 0 {
			return "", true
		}
		return allowlist[0], true
	}
	return MatchAllowlist(requested, allowlist)
}

func checkScopes(scopes []string) error {
	if len(scopes) > 100 {
		return problem.ErrInvalidRequest.WithField("scopes", "at most 100")
	}
	for _, sc := range scopes {
		if sc == "" || len(sc) > 256 || strings.ContainsFunc(sc, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '"' || r == '\\' }) {
			return problem.ErrInvalidRequest.WithField("scopes", "each scope: 1–256 characters, no space, quote, backslash or control character")
		}
	}
	return nil
}

// Started is a started flow: the provider's authorization URL to send the browser to, and
// the browser nonce its flow cookie must carry.
type Started struct {
	AuthURL string
	Nonce   string
}

// Start is the browser's POST of the connect page's form for session id (flow_page.go):
// with formToken, the page's token for this session, it makes the state, the PKCE
// verifier and (unless nonce, the browser's flow cookie, is a well-formed one already: a
// browser in two flows keeps one nonce, so both stay bound) the browser nonce, and
// records them in the session once. typed are the connection_config values the end user
// typed on the page; they count only when the application gave none (a session's values
// are never replaced), and a bad one is 400 invalid_connection_config, nothing recorded.
func (f *Flows) Start(ctx context.Context, id, formToken, nonce string, typed map[string]string) (Started, error) {
	cs, err := f.pendingSession(ctx, id)
	if err != nil {
		return Started{}, err
	}
	switch ok, err := f.keys.CheckFormToken(ctx, cs.ID, formToken); {
	case err != nil:
		return Started{}, err
	case !ok:
		return Started{}, problem.ErrForbidden.WithDetail("the connect form's token does not match this connect link")
	}
	now := f.now().UTC()
	cfg, err := f.providers.FlowConfig(ctx, cs.WorkspaceID, cs.Provider)
	if err != nil {
		return Started{}, err
	}
	if cfg.AuthMode != AuthModeOAuth2 {
		return Started{}, problem.ErrInvalidRequest.WithDetail("this connect link asks for an API key, not a sign-in")
	}
	values, fromPage := store.ParseJSONObject(cs.ConnectionConfig), ""
	if len(values) == 0 && cfg.NeedsConnectionConfig() {
		values, fromPage = typed, store.JSONObject(typed)
	}
	prov, err := cfg.Provider.Expand(values) // the connection's provider: its filled URLs
	if err != nil {
		return Started{}, err
	}
	state, stateHash, err := f.keys.NewState(ctx) // MAC'd under a state key
	if err != nil {
		return Started{}, err
	}
	verifier, err := NewVerifier()
	if err != nil {
		return Started{}, err
	}
	if CheckNonceFormat(nonce) != nil {
		if nonce, err = NewBrowserNonce(); err != nil {
			return Started{}, err
		}
	}
	authURL, err := AuthCodeURL(prov, AuthRequest{ClientID: cfg.ClientID,
		RedirectURI: cs.CallbackURL, Scopes: cs.Scopes, State: state, Verifier: verifier})
	if err != nil {
		return Started{}, problem.ErrInvalidRequest.WithDetail("the provider configuration cannot make an authorization request").WithCause(err)
	}
	verifierOrigins := prov.VerifierOrigins()
	sealed, err := f.creds.Seal(ctx, vault.PKCEVerifierBinding(cs.WorkspaceID, cs.ID, verifierOrigins),
		vault.NewSecret(verifier))
	if err != nil {
		return Started{}, err
	}
	binding, err := f.keys.BindBrowser(ctx, cs.ID, nonce)
	if err != nil {
		return Started{}, err
	}
	err = f.store.StartConnectSession(ctx, cs.ID, store.SessionStart{StateHash: stateHash, PKCEVerifier: sealed,
		VerifierOrigins: store.StoredOrigins(verifierOrigins), BrowserBinding: binding, ConnectionConfig: fromPage}, now)
	if errors.Is(err, store.ErrConflict) {
		return Started{}, problem.ErrInvalidState.WithDetail("this connect link was already used or has expired")
	}
	if err != nil {
		return Started{}, err
	}
	return Started{AuthURL: authURL, Nonce: nonce}, nil
}

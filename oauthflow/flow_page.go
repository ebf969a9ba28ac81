package oauthflow

import (
	"context"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// The connect page. A connect link is a bearer capability, and mail and chat link scanners
// open links: so GET /v1/connect/{session} only shows a page (Preview) saying which
// provider the end user is about to connect and for which application, whose one form
// POSTs back to the same URL with a form token bound to the session; only that POST
// (Start, after the HTTP layer's origin check) starts the flow and uses the session up.

// Page is what the connect page shows and carries.
type Page struct {
	// Provider is the provider's display name.
	Provider string
	// Application is the name of the workspace the session belongs to.
	Application string
	// FormToken goes back in the form's POST (FlowKeys.FormToken).
	FormToken string
	// Mode is the provider's auth mode: oauth2 (a button to the provider's sign-in) or
	// api_key or basic (a form for the key, or the username and password: SubmitCredential).
	Mode AuthMode
	// ReturnURL is where the flow ends (the session's return URL, or "").
	ReturnURL string
	// Fields are the connection_config parameters the end user types (the application
	// gave none and the provider needs them); the form posts each as ConfigFieldPrefix +
	// its name.
	Fields []ConfigParam
}

// ConfigFieldPrefix prefixes the connect form's connection_config inputs.
const ConfigFieldPrefix = "config_"

// Preview checks session id as Start does (its MAC, then that it exists, is unused and
// unexpired) and returns the page, changing nothing.
func (f *Flows) Preview(ctx context.Context, id string) (Page, error) {
	cs, err := f.pendingSession(ctx, id)
	if err != nil {
		return Page{}, err
	}
	cfg, err := f.providers.FlowConfig(ctx, cs.WorkspaceID, cs.Provider)
	if err != nil {
		return Page{}, err
	}
	ws, err := f.store.Workspace(ctx, cs.WorkspaceID)
	if err != nil {
		return Page{}, err
	}
	token, err := f.keys.FormToken(ctx, cs.ID)
	if err != nil {
		return Page{}, err
	}
	name := cfg.DisplayName
	if name == "" {
		name = cs.Provider
	}
	page := Page{Provider: name, Application: ws.Name, FormToken: token, Mode: cfg.AuthMode, ReturnURL: cs.ReturnURL}
	if len(store.ParseJSONObject(cs.ConnectionConfig)) == 0 && cfg.NeedsConnectionConfig() {
		page.Fields = cfg.Clone().ConnectionConfig
	}
	return page, nil
}

// pendingSession returns session id when it may still be started: its MAC holds (checked
// before the store is asked, so an id this deployment did not make never reaches it), and
// it exists, was never started or used, and has not expired.
func (f *Flows) pendingSession(ctx context.Context, id string) (store.ConnectSession, error) {
	switch ok, err := f.keys.CheckSessionID(ctx, id); {
	case err != nil:
		return store.ConnectSession{}, err
	case !ok:
		return store.ConnectSession{}, problem.ErrNotFound
	}
	cs, err := f.store.ConnectSession(ctx, id)
	if err != nil {
		return store.ConnectSession{}, err
	}
	if cs.StartedAt != nil || cs.UsedAt != nil || !f.now().UTC().Before(cs.ExpiresAt) {
		return store.ConnectSession{}, problem.ErrInvalidState.WithDetail("this connect link was already used or has expired")
	}
	return cs, nil
}

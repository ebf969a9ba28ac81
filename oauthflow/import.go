package oauthflow

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Import of existing grants (API.md "Connections"): an OAuth grant obtained elsewhere (a
// home-grown store, a peer such as Nango) becomes a connection as if the callback had
// stored it — sealed and bound to the provider's origins of now (sealGrant), audited
// connection.imported, scheduled for the refresher like any other. POST /v1/connections
// with "oauth2" and `authpipe-proxy import` both call Importer.Import.

// ImportedGrant is the "oauth2" object of an import: the tokens as the source holds them.
type ImportedGrant struct {
	AccessToken  vault.Secret `json:"access_token"`
	RefreshToken vault.Secret `json:"refresh_token"`
	// TokenType is "Bearer" (the default); nothing else can be presented by the proxy.
	TokenType string     `json:"token_type"`
	ExpiresAt *time.Time `json:"expires_at"`
	// RefreshTokenExpiresAt is the refresh token's own end, when the source knows it.
	RefreshTokenExpiresAt *time.Time `json:"refresh_token_expires_at"`
	Scopes                []string   `json:"scopes"`
}

// Import is one grant to import: whose, which provider of the workspace, and optionally
// the source's id of it (ExternalID), unique in the workspace, which makes a repeated
// import answer already_imported instead of storing a second copy.
type Import struct {
	Provider   string
	EndUserID  string
	ExternalID string
	Grant      ImportedGrant
}

// ImportLine is one grant as a JSON object: the "oauth2" form of POST /v1/connections,
// and one line of the file `authpipe-proxy import` reads.
type ImportLine struct {
	Provider   string         `json:"provider"`
	EndUserID  string         `json:"end_user_id"`
	ExternalID string         `json:"external_id"`
	OAuth2     *ImportedGrant `json:"oauth2"`
}

// Import is the line as an Import (a missing oauth2 object is an empty grant, which
// validation refuses).
func (l ImportLine) Import() Import {
	in := Import{Provider: l.Provider, EndUserID: l.EndUserID, ExternalID: l.ExternalID}
	if l.OAuth2 != nil {
		in.Grant = *l.OAuth2
	}
	return in
}

// ImportStore is what the import needs of the store (vault/store satisfies it).
type ImportStore interface {
	CreateConnection(ctx context.Context, c store.Connection, cred store.Credential, evs ...audit.Event) error
	ConnectionByExternalID(ctx context.Context, workspaceID, externalID string) (store.Connection, error)
}

// ImportDeps are what Importer drives. ValidEndUser is the end-user id rule
// (admin.ValidEndUserID), passed in because admin ranks above oauthflow.
type ImportDeps struct {
	Store        ImportStore
	Providers    FlowProviders
	Creds        Sealer
	ValidEndUser func(string) bool
}

// Importer imports grants. Safe for concurrent use.
type Importer struct {
	deps ImportDeps
	now  func() time.Time
	log  *slog.Logger
}

// NewImporter checks deps. now may be nil (time.Now), log nil (discard).
func NewImporter(deps ImportDeps, now func() time.Time, log *slog.Logger) (*Importer, error) {
	if deps.Store == nil || deps.Providers == nil || deps.Creds == nil || deps.ValidEndUser == nil {
		return nil, errors.New("oauthflow: Store, Providers, Creds and ValidEndUser are required")
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Importer{deps: deps, now: now, log: log}, nil
}

// maxTokenLen bounds an imported token (8 KiB, as an API key).
const maxTokenLen = 8192

// Import validates in (every field, all reported together in one 400 invalid_request),
// then stores it in one transaction with its connection.imported event by actor: nothing
// is written unless everything holds. A grant whose external id the workspace already
// holds is 409 already_imported (the detail names that connection).
//
// Scheduling: with a refresh token, the connection is due at its access token's expiry
// (or the provider's keep-alive, RefreshDue); with a refresh token and no expires_at it is
// due now, so the refresher's next sweep refreshes it and learns the real expiry.
func (im *Importer) Import(ctx context.Context, workspaceID, actor string, in Import) (store.Connection, error) {
	now := im.now().UTC()
	bad := im.validate(in, now)
	cfg, err := im.deps.Providers.FlowConfig(ctx, workspaceID, in.Provider)
	switch {
	case errors.Is(err, store.ErrNotFound):
		bad = field(bad, "provider", "no such provider in this workspace")
	case err != nil:
		return store.Connection{}, err
	case cfg.AuthMode != AuthModeOAuth2:
		bad = field(bad, "provider", "not an oauth2 provider")
	case len(cfg.Placeholders()) > 0:
		bad = field(bad, "provider", "the provider's URLs still contain placeholders")
	}
	if bad != nil {
		return store.Connection{}, bad
	}
	if in.ExternalID != "" {
		switch c, err := im.deps.Store.ConnectionByExternalID(ctx, workspaceID, in.ExternalID); {
		case err == nil:
			return c, problem.ErrAlreadyImported.WithDetail("external_id is held by connection " + c.ID)
		case !errors.Is(err, store.ErrNotFound):
			return store.Connection{}, err
		}
	}
	g := in.Grant
	tok := Token{AccessToken: g.AccessToken, RefreshToken: g.RefreshToken, TokenType: "Bearer",
		ExpiresAt: utc(g.ExpiresAt), RefreshExpiresAt: utc(g.RefreshTokenExpiresAt), Scopes: g.Scopes}
	conn := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: workspaceID, Provider: in.Provider,
		EndUserID: in.EndUserID, AuthMode: string(AuthModeOAuth2), Status: store.StatusActive, Version: 1,
		CreatedAt: now, UpdatedAt: now}
	if in.ExternalID != "" {
		ext := in.ExternalID
		conn.ExternalID = &ext
	}
	cred, err := sealGrant(ctx, im.deps.Creds, cfg.Provider, &conn, tok, now)
	if err != nil {
		return store.Connection{}, err
	}
	if !g.RefreshToken.IsZero() && tok.ExpiresAt == nil && conn.NextRefreshAt == nil {
		conn.NextRefreshAt = &now // learn the expiry at the next sweep
	}
	ev := audit.Event{WorkspaceID: workspaceID, Type: audit.ConnectionImported, Actor: actor, ConnectionID: conn.ID,
		Outcome: audit.Success, Data: audit.Data("provider", in.Provider, "refresh_token", boolText(!g.RefreshToken.IsZero()))}
	if err := im.deps.Store.CreateConnection(ctx, conn, cred, ev); err != nil {
		if errors.Is(err, store.ErrConflict) && in.ExternalID != "" {
			return store.Connection{}, problem.ErrAlreadyImported.WithDetail("external_id is held by another connection").WithCause(err)
		}
		return store.Connection{}, err
	}
	im.log.LogAttrs(ctx, slog.LevelInfo, "import: connection stored", slog.String("connection", conn.ID),
		slog.String("provider", in.Provider))
	return conn, nil
}

// validate checks everything that needs no I/O; nil when it all holds.
func (im *Importer) validate(in Import, now time.Time) *problem.Problem {
	var bad *problem.Problem
	g := in.Grant
	if in.Provider == "" || len(in.Provider) > 128 {
		bad = field(bad, "provider", "required")
	}
	if !im.deps.ValidEndUser(in.EndUserID) {
		bad = field(bad, "end_user_id", "1–256 printable characters")
	}
	if in.ExternalID != "" && !printable(in.ExternalID, 256) {
		bad = field(bad, "external_id", "1–256 printable characters")
	}
	if g.AccessToken.IsZero() || g.AccessToken.Len() > maxTokenLen {
		bad = field(bad, "oauth2.access_token", "required, at most 8 KiB")
	}
	if g.RefreshToken.Len() > maxTokenLen {
		bad = field(bad, "oauth2.refresh_token", "at most 8 KiB")
	}
	if g.TokenType != "" && !strings.EqualFold(g.TokenType, "bearer") {
		bad = field(bad, "oauth2.token_type", "Bearer (the default) is the only type the proxy can present")
	}
	if g.ExpiresAt != nil && !g.ExpiresAt.After(now) && g.RefreshToken.IsZero() {
		bad = field(bad, "oauth2.expires_at", "the access token has expired and there is no refresh_token")
	}
	if g.RefreshTokenExpiresAt != nil && !g.RefreshTokenExpiresAt.After(now) {
		bad = field(bad, "oauth2.refresh_token_expires_at", "the refresh token has expired")
	}
	if g.RefreshTokenExpiresAt != nil && g.RefreshToken.IsZero() {
		bad = field(bad, "oauth2.refresh_token_expires_at", "given without a refresh_token")
	}
	if err := checkScopes(g.Scopes); err != nil {
		bad = field(bad, "oauth2.scopes", "at most 100, each 1–256 characters, no space, quote, backslash or control character")
	}
	return bad
}

func field(p *problem.Problem, name, detail string) *problem.Problem {
	if p == nil {
		p = problem.ErrInvalidRequest
	}
	return p.WithField(name, detail)
}

func printable(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

package refresher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Narrowed reads (least privilege per read): a GitHub App connection's token endpoint
// asked with repositories and/or permissions gets a token minted for that request alone,
// limited to what it names, never cached and never stored; the connection's own cached
// token (the whole installation's) is untouched. Every narrowed mint is its own audit
// event (token.narrowed, appended before the token leaves: fail closed), naming what the
// token was limited to and what GitHub granted, because the aggregated token.read event
// cannot carry that.

// ErrNarrowingRefused: GitHub refused the narrowing (422): a repository the installation
// cannot reach, or a permission above the installation's.
var ErrNarrowingRefused = problem.Sentinel(problem.ErrNarrowingRefused, "refresher: the installation does not grant the narrowing")

// ErrNotNarrowable: narrowing asked of a connection that is not a GitHub App installation.
var ErrNotNarrowable = problem.Sentinel(problem.ErrInvalidRequest.WithDetail(
	"repositories and permissions narrow github_app connections only"), "refresher: connection cannot be narrowed")

// Narrowed mints a token of the github_app connection limited to n for actor (an API key
// id), after the same refusals as Credential (frozen workspace, needs_reauth,
// disconnected), and returns it with its expiry and the granted permissions and
// repositories as Scopes. The call carries the app's key, so it is checked against the
// key's bound origins (vault.CheckOrigin) first. A refusal by GitHub is not a failure of
// the connection: its status does not change.
func (t *Tokens) Narrowed(ctx context.Context, workspaceID, connectionID, actor string, n *oauthflow.Narrowing) (Credential, error) {
	cc, err := t.Usable(ctx, workspaceID, connectionID)
	if err != nil {
		return Credential{Conn: cc.Connection}, err
	}
	mode := oauthflow.AuthMode(cc.AuthMode)
	out := Credential{Kind: mode, Conn: cc.Connection}
	if mode != oauthflow.AuthModeGitHubApp {
		return out, ErrNotNarrowable
	}
	if n.Empty() {
		return out, ErrNotNarrowable
	}
	if t.r == nil {
		return out, ErrUnavailable
	}
	prov, tok, err := t.r.mintNarrowed(ctx, cc.Connection, n)
	ev := audit.Event{WorkspaceID: workspaceID, Type: audit.TokenNarrowed, Actor: actor, ConnectionID: cc.ID,
		Outcome: audit.Success, Data: narrowedData(cc.Provider, n, tok)}
	if err != nil {
		ev.Outcome, ev.ErrorCode = audit.Failure, problem.From(err).Code
		if t.r.audit != nil {
			_ = t.r.audit.AppendEvents(context.WithoutCancel(ctx), ev) // the read fails anyway
		}
		return out, err
	}
	if t.r.audit == nil {
		tok.AccessToken.Wipe()
		return out, problem.ErrAuditUnavailable
	}
	if err := t.r.audit.AppendEvents(ctx, ev); err != nil {
		// Not recorded, so not handed out: the token is revoked (best effort) and dropped.
		t.r.revokeNarrowed(ctx, cc.Connection, prov, tok.AccessToken)
		tok.AccessToken.Wipe()
		return out, problem.ErrAuditUnavailable.WithCause(err)
	}
	out.Secret, out.TokenType, out.ExpiresAt, out.Scopes = tok.AccessToken, tokenType(tok.TokenType), tok.ExpiresAt, tok.Scopes
	if out.Scopes == nil {
		out.Scopes = []string{}
	}
	return out, nil
}

// narrowedData is token.narrowed's data: the provider, what was asked (repositories,
// permissions, comma-separated) and what GitHub granted (scopes) with the token's expiry.
func narrowedData(provider string, n *oauthflow.Narrowing, tok oauthflow.Token) string {
	kv := []string{"provider", provider, "repositories", strings.Join(n.Repositories, ","),
		"permissions", strings.Join(n.PermissionList(), ",")}
	if !tok.AccessToken.IsZero() {
		kv = append(kv, "granted", strings.Join(tok.Scopes, ","))
		if tok.ExpiresAt != nil {
			kv = append(kv, "expires_at", tok.ExpiresAt.UTC().Format(time.RFC3339))
		}
	}
	return eventData(kv...)
}

// mintNarrowed mints the narrowed token: the provider's app key, checked against its
// bound origins, to the connection's filled token URL, within the per-host limit. It
// returns the provider as filled for the connection.
func (r *Refresher) mintNarrowed(ctx context.Context, c store.Connection, n *oauthflow.Narrowing) (oauthflow.Provider, oauthflow.Token, error) {
	prov, client, err := r.providers.Provider(ctx, c.WorkspaceID, c.Provider)
	if err == nil {
		prov, err = oauthflow.ConnectionProvider(prov, c) // the connection's installation
	}
	if err != nil {
		return prov, oauthflow.Token{}, err
	}
	use := vault.Use{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Actor: actor, Purpose: vault.UseMint}
	if err := vault.CheckOrigin(ctx, r.audit, use, prov.TokenURL, client.SecretBindings()...); err != nil {
		return prov, oauthflow.Token{}, err
	}
	hc, err := r.clientFor(prov) // the provider's TLS floor and pins (provider_tls.go)
	if err != nil {
		return prov, oauthflow.Token{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	slot, err := r.limits.acquire(ctx, hostOf(prov.TokenURL))
	if err != nil {
		return prov, oauthflow.Token{}, unavailableOnDeadline(err)
	}
	tok, err := oauthflow.MintGitHubApp(ctx, hc, prov, client, n, r.now())
	slot()
	if err != nil {
		return prov, oauthflow.Token{}, narrowedFailure(err, r.now())
	}
	return prov, tok, nil
}

// narrowedFailure maps a narrowed mint's failure to what the caller is told: a refused
// narrowing 422 narrowing_refused; the app's key or the installation refused 409
// needs_reauth (the connection's cached token is still whatever it was; the next mint of
// it records the refusal); a malformed narrowing 400; anything else 503, retry later.
func narrowedFailure(err error, now time.Time) error {
	var pe *oauthflow.ProviderError
	switch {
	case errors.Is(err, problem.ErrInvalidRequest):
		return err
	case errors.Is(err, oauthflow.ErrInvalidAppKey):
		return ErrNeedsReauth
	case errors.As(err, &pe) && pe.Code == "invalid_scope":
		return ErrNarrowingRefused
	case errors.As(err, &pe) && (pe.Code == "invalid_client" || pe.Code == "unauthorized_client" || pe.Code == "invalid_grant"):
		return ErrNeedsReauth
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, Classify(err, now))
}

// revokeNarrowed revokes a narrowed token that could not be handed out (best effort, a
// short deadline) at the API base of the provider it was minted with, where the token is
// valid (its natural binding: the provider's access-token origins).
func (r *Refresher) revokeNarrowed(ctx context.Context, c store.Connection, prov oauthflow.Provider, tok vault.Secret) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	use := vault.Use{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Actor: actor, Purpose: vault.UseRevoke}
	if vault.CheckOrigin(ctx, r.audit, use, prov.GitHubAppRevocationURL(), prov.AccessTokenOrigins()) != nil {
		return
	}
	if hc, err := r.clientFor(prov); err == nil {
		_ = oauthflow.RevokeGitHubApp(ctx, hc, prov, tok)
	}
}

package refresher

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/jitter"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Revocation at the provider (RFC 7009) and what depends on it: disconnecting a
// connection, erasing an end user (GDPR art. 17), revoking a workspace's connections
// before it is deleted, and the retry job for revocations a provider could not take.
//
// An OAuth connection being disconnected goes revoke_pending at once (its token is no
// longer served) and is revoked at the provider: on success its ciphertext is deleted, on
// 5xx, 429 or a timeout the retry job tries again with backoff, and where the provider
// cannot revoke, the sealed credential stays unusable until retention ends (purge). An
// API key cannot be revoked: it is kept sealed until then. A reconnect queues the grant it
// replaces (store.SaveOAuthConnection), and the retry job revokes that grant the same way.
// Every revocation ends: revoked, not revocable, or given up (audited) once it has been
// pending for the retention window.

// RevokeRetryActor is the actor of the retry job's audit events.
const RevokeRetryActor = "system:revoke-retry"

// Revocation error codes recorded in the audit chain (never a provider's text).
const (
	codeRevocationUnsupported = "revocation_unsupported"
	codeProviderUnavailable   = "provider_unavailable"
	codeProviderMissing       = "provider_missing"
	codeOriginChanged         = "origin_changed"
	codeGivenUp               = "revocation_given_up"
)

// revokeTimeout bounds one revocation attempt (both tokens).
const revokeTimeout = 15 * time.Second

// RevocationStore is what revocation needs of the store (vault/store satisfies it).
type RevocationStore interface {
	Connection(ctx context.Context, workspaceID, id string) (store.Connection, error)
	ConnectionWithCredential(ctx context.Context, workspaceID, id string) (store.ConnectionCredential, error)
	ListConnections(ctx context.Context, workspaceID string, f store.ConnectionFilter) ([]store.Connection, error)
	Disconnect(ctx context.Context, workspaceID, id string, deleteCredential bool, evs ...audit.Event) (store.Connection, error)
	BeginRevoke(ctx context.Context, workspaceID, id string, evs ...audit.Event) (store.Connection, bool, error)
	FinishRevoke(ctx context.Context, workspaceID, id string, r store.RevokeResult, evs ...audit.Event) (store.Connection, error)
	FinishGrantRevoke(ctx context.Context, id string, r store.RevokeResult, evs ...audit.Event) error
	RevocationOf(ctx context.Context, id string) (store.Revocation, error)
	ConnectionRevocations(ctx context.Context, connectionID string) ([]store.Revocation, error)
	ClaimRevocations(ctx context.Context, now, claimUntil time.Time, limit int) ([]store.Revocation, error)
	EndUserConnections(ctx context.Context, workspaceID, endUserID string) ([]store.ConnectionCredential, error)
	EraseEndUser(ctx context.Context, workspaceID, endUserID string, event func(store.Connection) audit.Event) (int64, error)
}

var _ RevocationStore = (*store.Store)(nil)

// Revocations disconnects connections and revokes their tokens at the providers. Safe for
// concurrent use.
type Revocations struct {
	store     RevocationStore
	creds     Sealer
	audit     audit.Appender
	providers Providers
	clientFor func(oauthflow.Provider) (*http.Client, error)
	now       func() time.Time
	log       *slog.Logger
	retention time.Duration // a revocation pending this long is given up
}

// NewRevocations builds the revocation service on st with r's sealer, providers, provider
// clients, clock and logger; a revocation still failing after retention
// (AUTHPIPE_RETENTION) is given up.
func NewRevocations(r *Refresher, st RevocationStore, retention time.Duration) (*Revocations, error) {
	if r == nil || st == nil || retention <= 0 {
		return nil, errors.New("refresher: revocations need a Refresher, a store and a retention window")
	}
	return &Revocations{store: st, creds: r.creds, audit: r.audit, providers: r.providers, clientFor: r.clientFor, now: r.now,
		log: r.log, retention: retention}, nil
}

// revokeAttempt is how one call to the provider ended.
type revokeAttempt struct {
	outcome store.RevokeOutcome
	code    string // error code for the audit event, "" on success
}

// atProvider revokes a connection's tokens at its provider (RFC 7009): the refresh token
// first, with token_type_hint, then the access token. A provider that answers 5xx or 429,
// a timeout or a network error is worth retrying; no revocation endpoint, or a permanent
// refusal, is not.
func (v *Revocations) atProvider(ctx context.Context, cc store.ConnectionCredential) revokeAttempt {
	return v.revokeAt(ctx, cc, false)
}

// revokeAt is atProvider; with accessOnly the refresh token is left alone (an incident
// rotation revokes the exposed access token and keeps the grant: incident.go).
func (v *Revocations) revokeAt(ctx context.Context, cc store.ConnectionCredential, accessOnly bool) revokeAttempt {
	if cc.Credential == nil || len(cc.Credential.AccessToken) == 0 && len(cc.Credential.RefreshToken) == 0 {
		return revokeAttempt{outcome: store.Revoked} // nothing left to revoke
	}
	p, client, err := v.providers.Provider(ctx, cc.WorkspaceID, cc.Provider)
	if err == nil {
		p, err = oauthflow.ConnectionProvider(p, cc.Connection) // the connection's filled URLs
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return revokeAttempt{outcome: store.NotRevocable, code: codeProviderMissing}
	case err != nil:
		return v.retryable(ctx, cc, err)
	case p.AuthMode == oauthflow.AuthModeGitHubApp:
		return v.revokeGitHubApp(ctx, cc, p) // DELETE /installation/token (revoke_githubapp.go)
	case p.RevocationURL == "":
		return revokeAttempt{outcome: store.NotRevocable, code: codeRevocationUnsupported}
	}
	bound := client.SecretBindings()
	if p.AuthMode.Minted() { // the connection's own client, when it has one (mint.go)
		grant, err := openGrant(ctx, v.creds, cc)
		if err != nil {
			return v.retryable(ctx, cc, err)
		}
		client, bound, err = presented(p, client, grant, cc)
		grant.Wipe()
		if err != nil {
			return revokeAttempt{outcome: store.NotRevocable, code: "invalid_credential"}
		}
	}
	hc, err := v.clientFor(p)
	if err != nil {
		return v.retryable(ctx, cc, err)
	}
	ctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	defer cancel()
	use := vault.Use{WorkspaceID: cc.WorkspaceID, ConnectionID: cc.ID, Actor: actor, Purpose: vault.UseRevoke}
	for _, t := range []struct {
		bind vault.Binding
		hint oauthflow.TokenTypeHint
		env  []byte
	}{
		{vault.RefreshTokenBinding(cc.WorkspaceID, cc.ID, store.BoundOrigins(cc.Credential.RefreshOrigins)),
			oauthflow.HintRefreshToken, cc.Credential.RefreshToken},
		{store.AccessTokenBinding(cc.Connection, store.BoundOrigins(cc.Credential.AccessOrigins)),
			oauthflow.HintAccessToken, cc.Credential.AccessToken},
	} {
		if len(t.env) == 0 || accessOnly && t.hint == oauthflow.HintRefreshToken {
			continue
		}
		if err := vault.CheckOrigin(ctx, v.audit, use, p.RevocationURL, append(slices.Clone(bound), t.bind.Origins)...); err != nil {
			var oe *vault.OriginError
			if errors.As(err, &oe) && oe.Unbound {
				return v.retryable(ctx, cc, err) // bound by the binding migration, then tried again
			}
			return revokeAttempt{outcome: store.NotRevocable, code: codeOriginChanged}
		}
		tok, err := v.creds.Open(ctx, t.bind, t.env)
		if err != nil {
			return v.retryable(ctx, cc, err)
		}
		err = oauthflow.Revoke(ctx, hc, p, client, tok, t.hint)
		tok.Wipe()
		if err != nil {
			return v.classify(ctx, cc, err)
		}
	}
	return revokeAttempt{outcome: store.Revoked}
}

func (v *Revocations) classify(ctx context.Context, cc store.ConnectionCredential, err error) revokeAttempt {
	var pe *oauthflow.ProviderError
	switch {
	case errors.Is(err, oauthflow.ErrRevocationUnsupported):
		return revokeAttempt{outcome: store.NotRevocable, code: codeRevocationUnsupported}
	case errors.As(err, &pe):
		if pe.Status >= 500 || pe.Status == http.StatusTooManyRequests {
			return revokeAttempt{outcome: store.RetryLater, code: codeProviderUnavailable}
		}
		// RFC 7009 section 2.2.1: e.g. unsupported_token_type; a permanent refusal.
		return revokeAttempt{outcome: store.NotRevocable, code: pe.Code}
	case errors.Is(err, outbound.ErrUnsafeURL):
		return revokeAttempt{outcome: store.NotRevocable, code: "unsafe_url"}
	}
	return v.retryable(ctx, cc, err)
}

// retryable logs a failure that may pass (timeout, network, KMS, database) without its
// text reaching the audit chain.
func (v *Revocations) retryable(ctx context.Context, cc store.ConnectionCredential, err error) revokeAttempt {
	code := codeProviderUnavailable
	var p *problem.Problem
	if errors.As(err, &p) {
		code = p.Code
	} else if errors.Is(err, vault.ErrKMSUnavailable) {
		code = problem.ErrKMSUnavailable.Code
	}
	v.log.WarnContext(ctx, "revocation: attempt failed; will retry", "connection", cc.ID, "code", code, "err", err)
	return revokeAttempt{outcome: store.RetryLater, code: code}
}

// revokeBackoff is the wait before retry number attempts+1: 30 s doubling to an hour,
// with up to 20 % jitter.
func revokeBackoff(attempts int) time.Duration {
	d := 30 * time.Second << min(attempts, 7)
	d = min(d, time.Hour)
	return d + jitter.Duration(d/5+1)
}

// givenUp is the outcome of a revocation pending for the whole retention window.
var givenUp = revokeAttempt{outcome: store.NotRevocable, code: codeGivenUp}

// pending makes one revocation attempt for a revoke_pending connection (none when giveUp)
// and records its outcome: the ciphertext deleted (revoked), kept sealed until retention
// (cannot be revoked, or given up), or a retry scheduled with backoff.
func (v *Revocations) pending(ctx context.Context, workspaceID, id, actor string, giveUp bool) (store.Connection, error) {
	cc, err := v.store.ConnectionWithCredential(ctx, workspaceID, id)
	if err != nil {
		return store.Connection{}, err
	}
	if cc.Status != store.StatusRevokePending {
		return v.store.FinishRevoke(ctx, workspaceID, id, store.RevokeResult{Outcome: store.Revoked}) // drops a stale revocation: ErrConflict
	}
	att := givenUp
	if !giveUp {
		att = v.atProvider(ctx, cc)
	}
	attempts := 0
	if att.outcome == store.RetryLater {
		if r, err := v.store.RevocationOf(ctx, id); err == nil {
			attempts = r.Attempts
		}
	}
	res, ev := v.outcome(cc.Connection, actor, att, attempts, false)
	return v.store.FinishRevoke(ctx, workspaceID, id, res, ev)
}

// outcome is what records an attempt of a connection's own credential or of a grant that
// a reconnect replaced: the store's result and the connection.revoked event.
func (v *Revocations) outcome(conn store.Connection, actor string, att revokeAttempt, attempts int, replaced bool) (store.RevokeResult, audit.Event) {
	ev := audit.Event{WorkspaceID: conn.WorkspaceID, Type: audit.ConnectionRevoked, Actor: actor, ConnectionID: conn.ID,
		Outcome: audit.Failure, ErrorCode: att.code}
	res := store.RevokeResult{Outcome: att.outcome, ErrorCode: att.code}
	data := []string{"provider", conn.Provider}
	if replaced {
		data = append(data, "grant", "replaced")
	}
	switch {
	case att.outcome == store.Revoked:
		ev.Outcome = audit.Success
	case att.outcome == store.RetryLater:
		res.Next = v.now().Add(revokeBackoff(attempts))
		data = append(data, "retry", "scheduled")
	case att.code == codeGivenUp:
		data = append(data, "revocation", "given_up")
	}
	if att.outcome == store.NotRevocable && !replaced {
		data = append(data, "credential", "sealed_until_retention")
	}
	ev.Data = eventData(data...)
	return res, ev
}

// replacedGrant makes one revocation attempt of a grant that a reconnect replaced (none
// when giveUp) and records its outcome: the revocation and the grant's sealed tokens
// deleted (revoked, not revocable or given up), or a retry scheduled with backoff. ended
// reports the former.
func (v *Revocations) replacedGrant(ctx context.Context, r store.Revocation, actor string, giveUp bool) (ended bool, err error) {
	conn, err := v.store.Connection(ctx, r.WorkspaceID, r.ConnectionID)
	if err != nil {
		return false, err
	}
	att := givenUp
	if !giveUp {
		att = v.atProvider(ctx, store.ConnectionCredential{Connection: conn,
			Credential: grantCredential(r)})
	}
	res, ev := v.outcome(conn, actor, att, r.Attempts, true)
	return res.Outcome != store.RetryLater, v.store.FinishGrantRevoke(ctx, r.ID, res, ev)
}

// grantCredential is the replaced grant r carries, as the credential it was.
func grantCredential(r store.Revocation) *store.Credential {
	return &store.Credential{ConnectionID: r.ConnectionID, WorkspaceID: r.WorkspaceID, AccessToken: r.AccessToken,
		RefreshToken: r.RefreshToken, AccessOrigins: r.AccessOrigins, RefreshOrigins: r.RefreshOrigins}
}

// Retry is the retry job: it claims up to limit revocations that are due and makes one
// attempt each; a revocation pending for the retention window is given up instead
// (audited as connection.revoked, error_code revocation_given_up). It returns how many
// revocations it has ended (revoked, found not revocable, or given up).
func (v *Revocations) Retry(ctx context.Context, limit int) (int, error) {
	now := v.now()
	due, err := v.store.ClaimRevocations(ctx, now, now.Add(2*revokeTimeout+time.Minute), limit)
	if err != nil {
		return 0, err
	}
	finished := 0
	for _, r := range due {
		giveUp := !now.Before(r.CreatedAt.Add(v.retention))
		ended := false
		if r.Replaced() {
			ended, err = v.replacedGrant(ctx, r, RevokeRetryActor, giveUp)
		} else {
			var c store.Connection
			c, err = v.pending(ctx, r.WorkspaceID, r.ConnectionID, RevokeRetryActor, giveUp)
			ended = c.Status == store.StatusDisconnected
		}
		switch {
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		case err != nil:
			v.log.WarnContext(ctx, "revocation retry failed", "connection", r.ConnectionID, "err", err)
		case ended:
			finished++
		}
	}
	return finished, nil
}

// Disconnect disconnects connection id of the workspace on behalf of actor, revoking an
// OAuth connection's tokens at its provider (one attempt now; the retry job takes a
// failed one on). changed is false when the connection was disconnected already.
func (v *Revocations) Disconnect(ctx context.Context, workspaceID, id, actor string) (conn store.Connection, changed bool, err error) {
	conn, err = v.store.Connection(ctx, workspaceID, id)
	if err != nil {
		return store.Connection{}, false, err
	}
	ev := audit.Event{WorkspaceID: workspaceID, Type: audit.ConnectionDisconnected, Actor: actor,
		ConnectionID: id, Outcome: audit.Success, Data: eventData("provider", conn.Provider)}
	if oauthflow.AuthMode(conn.AuthMode).Typed() { // nothing to revoke at the provider
		if conn.Status != store.StatusDisconnected {
			ev.Data = eventData("provider", conn.Provider, "credential", "sealed_until_retention")
			changed = true
		}
		conn, err = v.store.Disconnect(ctx, workspaceID, id, false, ev)
		return conn, changed, err
	}
	conn, changed, err = v.store.BeginRevoke(ctx, workspaceID, id, ev)
	if err != nil || !changed {
		return conn, changed, err
	}
	if done, err := v.pending(ctx, workspaceID, id, actor, false); err == nil {
		conn = done
	} else if !errors.Is(err, store.ErrConflict) {
		// The disconnect itself committed: the retry job takes the revocation on.
		v.log.WarnContext(ctx, "revocation: recording the attempt failed", "connection", id, "err", err)
	}
	return conn, true, nil
}

// EraseEndUser erases an end user of the workspace (GDPR art. 17) on behalf of actor:
// every connection of theirs is revoked at its provider where possible (one attempt; the
// erasure does not wait for a provider that is down) and hard-deleted now with its
// ciphertext and the end user's connect sessions. Each deletion is audited as
// connection.erased with the provider and the revocation's outcome, never a credential
// or the end user's id; grants that reconnects replaced and whose revocation is pending
// get one attempt too (replaced_grants). It returns how many connections were deleted and the ones listed
// before the deletion.
func (v *Revocations) EraseEndUser(ctx context.Context, workspaceID, endUser, actor string) (int64, []store.Connection, error) {
	conns, err := v.store.EndUserConnections(ctx, workspaceID, endUser)
	if err != nil {
		return 0, nil, err
	}
	outcome := make(map[string]revokeAttempt, len(conns))
	replaced := make(map[string]string, len(conns))
	for _, cc := range conns {
		if oauthflow.AuthMode(cc.AuthMode).HasAccessToken() {
			outcome[cc.ID] = v.atProvider(ctx, cc)
			replaced[cc.ID] = v.revokeReplaced(ctx, cc.Connection)
		} else {
			outcome[cc.ID] = revokeAttempt{outcome: store.NotRevocable, code: codeRevocationUnsupported}
		}
	}
	n, err := v.store.EraseEndUser(ctx, workspaceID, endUser, func(conn store.Connection) audit.Event {
		att, ok := outcome[conn.ID]
		revocation := "revoked"
		switch {
		case !ok: // created after the listing: deleted unrevoked
			att, revocation = revokeAttempt{code: codeProviderUnavailable}, "not_attempted"
		case att.outcome == store.NotRevocable:
			revocation = "not_revocable"
		case att.outcome == store.RetryLater:
			revocation = "failed"
		}
		return audit.Event{WorkspaceID: workspaceID, Type: audit.ConnectionErased, Actor: actor, ConnectionID: conn.ID,
			Outcome: audit.Success, ErrorCode: att.code, Data: eventData("provider", conn.Provider, "revocation", revocation,
				"replaced_grants", replaced[conn.ID])}
	})
	if err != nil {
		return 0, nil, err
	}
	listed := make([]store.Connection, len(conns))
	for i, cc := range conns {
		listed[i] = cc.Connection
	}
	return n, listed, nil
}

// revokeReplaced makes one attempt at each pending revocation of a grant of conn that a
// reconnect replaced, before an erasure deletes them: "" when there is none, "revoked"
// when each was revoked, else "failed".
func (v *Revocations) revokeReplaced(ctx context.Context, conn store.Connection) string {
	rs, err := v.store.ConnectionRevocations(ctx, conn.ID)
	if err != nil {
		v.log.WarnContext(ctx, "revocation: pending grants not listed", "connection", conn.ID, "err", err)
		return "failed"
	}
	result := ""
	for _, r := range rs {
		if !r.Replaced() {
			continue
		}
		if result == "" {
			result = "revoked"
		}
		cc := store.ConnectionCredential{Connection: conn, Credential: grantCredential(r)}
		if v.atProvider(ctx, cc).outcome != store.Revoked {
			result = "failed"
		}
	}
	return result
}

// RevokeWorkspace revokes the tokens of the workspace's OAuth connections that are not
// disconnected, one attempt each, until budget ends (the workspace is about to be
// deleted). It returns how many were revoked.
func (v *Revocations) RevokeWorkspace(ctx context.Context, workspaceID string, budget time.Duration) (int, error) {
	revoked := 0
	bctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	for after := ""; bctx.Err() == nil; {
		list, err := v.store.ListConnections(ctx, workspaceID, store.ConnectionFilter{After: after, Limit: 100})
		if err != nil {
			return revoked, err
		}
		for _, conn := range list {
			if !oauthflow.AuthMode(conn.AuthMode).HasAccessToken() || conn.Status == store.StatusDisconnected || bctx.Err() != nil {
				continue
			}
			cc, err := v.store.ConnectionWithCredential(ctx, workspaceID, conn.ID)
			if err == nil && v.atProvider(bctx, cc).outcome == store.Revoked && cc.Credential != nil {
				revoked++
			}
		}
		if len(list) < 100 {
			break
		}
		after = list[len(list)-1].ID
	}
	return revoked, nil
}

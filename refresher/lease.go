package refresher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/jitter"
	"github.com/authpipe/authpipe-proxy/internal/tracing"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// actor is the audit actor of the refresher's own changes.
const actor = "refresher"

// holder returns a lease holder id unique to one claim: the process id and 64 random bits.
// Two flights of the same process are as distinct as two replicas.
func (r *Refresher) holder() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return r.process + "/" + hex.EncodeToString(b[:])
}

type unthrottledKey struct{}

// unthrottled marks a context whose forced refresh ignores Config.ForcedInterval: an
// incident rotation (incident.go) must replace the exposed token even if the connection
// was refreshed a moment ago (the token it would otherwise get back is the exposed one).
func unthrottled(ctx context.Context) context.Context {
	return context.WithValue(ctx, unthrottledKey{}, true)
}

func forcedInterval(ctx context.Context, d time.Duration) time.Duration {
	if on, _ := ctx.Value(unthrottledKey{}).(bool); on {
		return 0
	}
	return d
}

// onDemand claims the connection's lease (or finds it fresh, cooling down or busy), and
// refreshes while it holds it. A busy lease is waited out and the row re-read: the waiter
// gets the other replica's token instead of refreshing again. A forced refresh is one
// per connection per Config.ForcedInterval across replicas (store.ClaimRequest.Force):
// inside the interval it is decided as an unforced one, so the caller gets the last
// refresh's token unless the token needs refreshing anyway.
func (r *Refresher) onDemand(ctx context.Context, workspaceID, connectionID string, minValidity time.Duration, force bool) (result, error) {
	waitUntil := r.now().Add(r.cfg.WaitBusy)
	claimedOnce := false
	for {
		now := r.now()
		holder := r.holder()
		needed := func(c store.Connection) bool {
			if !r.NeedsRefresh(c, minValidity) {
				return false
			}
			// Just refreshed (by anyone) and still valid: serve it, even if it cannot meet
			// minValidity: asking again would only loop.
			return c.LastRefreshedAt == nil || now.Sub(*c.LastRefreshedAt) >= r.cfg.MinInterval || !stillValid(c, now)
		}
		cl, err := r.store.ClaimRefresh(ctx, store.ClaimRequest{WorkspaceID: workspaceID, ConnectionID: connectionID,
			Holder: holder, Now: now, LeaseUntil: now.Add(r.cfg.LeaseTTL), Needed: needed, Force: force && !claimedOnce, ForceInterval: forcedInterval(ctx, r.cfg.ForcedInterval)})
		if err != nil {
			return result{}, err
		}
		switch cl.Outcome {
		case store.ClaimFresh:
			return result{row: cl.Row}, nil
		case store.ClaimInactive:
			return result{row: cl.Row, err: inactiveErr(cl.Row)}, nil
		case store.ClaimCooldown:
			return result{row: cl.Row, err: ErrUnavailable}, nil
		case store.ClaimBusy:
			if !r.now().Before(waitUntil) {
				return result{row: cl.Row, err: ErrUnavailable}, nil
			}
			if err := jitter.Sleep(ctx, 20*time.Millisecond+jitter.Duration(40*time.Millisecond)); err != nil {
				return result{}, err
			}
			continue
		}
		claimedOnce = true
		res, retry := r.perform(ctx, cl, holder)
		if retry {
			continue // the row changed under us: re-read it
		}
		return res, nil
	}
}

// inactiveErr is the error of a claim that found the connection inactive: its refusal
// (tokens.go), else unavailable.
func inactiveErr(cc store.ConnectionCredential) error {
	if err := refusal(cc); err != nil {
		return err
	}
	return ErrUnavailable
}

// perform refreshes one leased connection. retry says the caller should re-read: the
// lease was lost or invalid_grant met a row that another refresh had changed.
func (r *Refresher) perform(ctx context.Context, cl store.Claim, holder string) (result, bool) {
	ctx, span := tracing.Start(ctx, "refresh", trace.SpanKindInternal)
	if span.IsRecording() {
		c := cl.Row.Connection
		span.SetAttributes(attribute.String("authpipe.provider", c.Provider),
			attribute.String("authpipe.workspace_id", c.WorkspaceID), attribute.String("authpipe.connection_id", c.ID))
	}
	res, retry := r.performLeased(ctx, cl, holder)
	tracing.End(span, res.err)
	return res, retry
}

// accessBindingAuthentic authenticates the origins the new access token will be sealed to
// (commit: "the new tokens keep the connection's binding"). They are read from
// credentials.access_origins, a column nothing else authenticates: a database writer who
// edits it (and the provider's api_base_url) would have the next refreshed or minted token
// bound to — and forwarded to — a host of theirs. They are the stored access token's
// associated data, so that token is opened with them first; if it does not open
// (ErrDecrypt: the origins, or the token, were edited), or there is none, nothing is sent to
// the provider: a credential.binding_refused event, and the refresh fails (backing off) as
// for a moved endpoint. Opening it costs no KMS call (the DEK is cached) and no query.
func (r *Refresher) accessBindingAuthentic(ctx context.Context, cl store.Claim, holder string) (result, bool, bool) {
	c, cred := cl.Row.Connection, cl.Row.Credential
	if cred == nil {
		return result{}, false, true // performLeased and performMint decide
	}
	var err error
	if len(cred.AccessToken) == 0 {
		err = vault.ErrDecrypt // every stored OAuth, imported or minted connection has one
	} else {
		var t vault.Secret
		t, err = r.creds.Open(ctx, store.AccessTokenBinding(c, store.BoundOrigins(cred.AccessOrigins)), cred.AccessToken)
		t.Wipe()
	}
	if err == nil {
		return result{}, false, true
	}
	code := "kms_unavailable"
	if errors.Is(err, vault.ErrDecrypt) {
		code = "origin_changed"
		if r.audit != nil {
			_ = r.audit.AppendEvents(context.WithoutCancel(ctx), audit.Event{WorkspaceID: c.WorkspaceID, Type: audit.BindingRefused,
				Actor: actor, ConnectionID: c.ID, Outcome: audit.Failure, ErrorCode: "origin_changed",
				Data: eventData("purpose", vault.UseRefresh, "reason", "access_binding_unauthentic",
					"origin", strings.Join(store.BoundOrigins(cred.AccessOrigins), " "))}) // the origins it claims
		}
		r.log.LogAttrs(ctx, slog.LevelWarn, "refresh refused: the stored access binding does not authenticate", slog.String("connection", c.ID))
	}
	res, retry := r.failed(ctx, cl, holder, &Failure{Class: ClassTransient, Code: code, cause: err})
	if res.err != nil {
		res.err = err
		if code == "origin_changed" { // 409 origin_changed to the caller, as for a moved endpoint
			res.err = fmt.Errorf("%w: the stored access binding does not authenticate", vault.ErrOriginNotBound)
		}
	}
	return res, retry, false
}

func (r *Refresher) performLeased(ctx context.Context, cl store.Claim, holder string) (res result, retry bool) {
	c := cl.Row.Connection
	cred := cl.Row.Credential
	res.row = cl.Row
	release := func(next *time.Time, clearNext bool) {
		if err := r.store.ReleaseRefresh(context.WithoutCancel(ctx), c.ID, holder, next, clearNext, r.now()); err != nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "release lease", slog.String("connection", c.ID), slog.Any("err", err))
		}
	}
	if res, retry, ok := r.accessBindingAuthentic(ctx, cl, holder); !ok {
		return res, retry
	}
	if oauthflow.AuthMode(c.AuthMode).Minted() {
		return r.performMint(ctx, cl, holder) // mint.go: the same lease, commit and failures
	}
	if cred == nil || len(cred.RefreshToken) == 0 {
		// Nothing to refresh with: stop scheduling it, serve what there is.
		release(nil, true)
		res.err = ErrUnavailable
		return res, false
	}
	// A refresh that cannot even start (KMS down, provider configuration gone) backs off
	// like a transient provider failure, so neither the sweep nor requests spin on it.
	rtOrigins := store.BoundOrigins(cred.RefreshOrigins)
	rt, err := r.creds.Open(ctx, vault.RefreshTokenBinding(c.WorkspaceID, c.ID, rtOrigins), cred.RefreshToken)
	if err != nil {
		res, retry = r.failed(ctx, cl, holder, &Failure{Class: ClassTransient, Code: "kms_unavailable", cause: err})
		if res.err != nil {
			res.err = err
		}
		return res, retry
	}
	defer rt.Wipe()
	prov, client, err := r.providers.Provider(ctx, c.WorkspaceID, c.Provider)
	if err == nil {
		prov, err = oauthflow.ConnectionProvider(prov, c) // the connection's filled URLs
	}
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "refresh: provider not resolvable", slog.String("connection", c.ID), slog.Any("err", err))
		return r.failed(ctx, cl, holder, &Failure{Class: ClassTransient, Code: "provider_not_configured", cause: err})
	}
	use := vault.Use{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Actor: actor, Purpose: vault.UseRefresh}
	if err := vault.CheckOrigin(ctx, r.audit, use, prov.RefreshTokenURL(), append(client.SecretBindings(), rtOrigins)...); err != nil {
		res, retry = r.failed(ctx, cl, holder, &Failure{Class: ClassTransient, Code: "origin_changed", cause: err})
		if res.err != nil {
			res.err = err
		}
		return res, retry
	}
	return r.callProvider(ctx, cl, holder, prov, prov.RefreshTokenURL(), Classify,
		func(hc *http.Client, start time.Time) (oauthflow.Token, error) {
			return oauthflow.Refresh(ctx, hc, prov, client, rt, start)
		})
}

// callProvider makes a leased connection's one provider call (a refresh grant, a mint) to
// endpoint and ends the lease with its result: over the provider's client (its TLS floor
// and pins, provider_tls.go), inside the per-host limit, timed, then committed (commit) or
// failed as classify says (failure.go). A response without an access token is a transient
// failure.
func (r *Refresher) callProvider(ctx context.Context, cl store.Claim, holder string, prov oauthflow.Provider, endpoint string,
	classify func(error, time.Time) *Failure, call func(hc *http.Client, start time.Time) (oauthflow.Token, error)) (result, bool) {
	c := cl.Row.Connection
	hc, err := r.clientFor(prov)
	if err != nil {
		return r.failed(ctx, cl, holder, &Failure{Class: ClassTransient, Code: "provider_not_configured", cause: err})
	}
	slot, err := r.limits.acquire(ctx, hostOf(endpoint))
	if err != nil {
		if rerr := r.store.ReleaseRefresh(context.WithoutCancel(ctx), c.ID, holder, nil, false, r.now()); rerr != nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "release lease", slog.String("connection", c.ID), slog.Any("err", rerr))
		}
		return result{row: cl.Row, err: err}, false
	}
	start := r.now()
	tok, perr := call(hc, start)
	slot()
	if r.latency != nil {
		r.latency(c.Provider, r.now().Sub(start))
	}
	r.fail.hit("after_provider")
	if perr == nil && tok.AccessToken.IsZero() {
		perr = &Failure{Class: ClassTransient, Code: "invalid_token_response"}
	}
	if perr != nil {
		return r.failed(ctx, cl, holder, classify(perr, r.now()))
	}
	return r.commit(ctx, cl, holder, prov, tok)
}

// commit seals the new tokens and stores them in the transaction that releases the lease
// (a transaction it may share with other refreshes' commits, each fenced on its own).
func (r *Refresher) commit(ctx context.Context, cl store.Claim, holder string, prov oauthflow.Provider, tok oauthflow.Token) (result, bool) {
	c := cl.Row.Connection
	now := r.now()
	rc := store.RefreshCommit{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Holder: holder, Version: c.Version,
		TokenType: tok.TokenType, CredentialPrefix: tok.AccessToken.Prefix(8), ExpiresAt: tok.ExpiresAt,
		NextRefreshAt: r.deadline(prov.RefreshDue(tok, now)), Now: now,
		Events: []audit.Event{{WorkspaceID: c.WorkspaceID, At: now, Type: audit.TokenRefresh, Actor: actor,
			ConnectionID: c.ID, Outcome: audit.Success,
			Data: eventData("provider", c.Provider, "rotated", map[bool]string{true: "true"}[!tok.RefreshToken.IsZero()],
				"minted", map[bool]string{true: "true"}[oauthflow.AuthMode(c.AuthMode).Minted()])}}}
	if tok.Scopes != nil {
		rc.Scopes = store.Strings(tok.Scopes)
	}
	// The refresh token's end: what this response says; a rotated one without it is
	// unknown; an unrotated one without it keeps what was stored.
	if tok.RefreshExpiresAt != nil || !tok.RefreshToken.IsZero() {
		rc.RefreshTokenExpiresAt, rc.SetRefreshTokenExpiry = tok.RefreshExpiresAt, true
	}
	// The new tokens keep the connection's binding, not the provider's current origins.
	var access, refresh vault.Origins
	if cred := cl.Row.Credential; cred != nil {
		access, refresh = store.BoundOrigins(cred.AccessOrigins), store.BoundOrigins(cred.RefreshOrigins)
	}
	var err error
	if rc.AccessToken, err = r.creds.Seal(ctx, store.AccessTokenBinding(c, access), tok.AccessToken); err == nil && !tok.RefreshToken.IsZero() {
		rc.RefreshToken, err = r.creds.Seal(ctx, vault.RefreshTokenBinding(c.WorkspaceID, c.ID, refresh), tok.RefreshToken)
	}
	if err != nil {
		// The provider answered but the vault cannot seal: the new tokens are lost. The
		// lease runs out; a rotated grant then fails with invalid_grant → needs_reauth.
		r.log.LogAttrs(ctx, slog.LevelError, "refresh: cannot seal new tokens", slog.String("connection", c.ID), slog.Any("err", err))
		r.count(c.Provider, "error")
		return result{row: cl.Row, err: err}, false
	}
	// The provider has answered: with a rotating provider the stored refresh token is now
	// spent, and these tokens are the only valid ones. A database that is unreachable
	// (restarting, failing over) is waited for, for as long as the lease would run, so
	// that they are not thrown away. Committing late is safe: the commit is fenced on the
	// lease holder and the row's version, and a lease that ran out and was taken by
	// another holder makes it ErrLeaseLost.
	var conn store.Connection
	giveUp := time.Now().Add(r.cfg.LeaseTTL) // real time, as the sleeps are
	for attempt := 0; ; attempt++ {
		conn, err = r.commits.commit(ctx, rc) // grouped with other ready results (commit.go)
		if err == nil || errors.Is(err, store.ErrLeaseLost) || !errors.Is(err, store.ErrUnavailable) || !time.Now().Before(giveUp) {
			break
		}
		if attempt == 0 {
			r.log.LogAttrs(ctx, slog.LevelWarn, "refresh: database unavailable at commit; retrying with the new tokens held",
				slog.String("connection", c.ID), slog.Any("err", err))
		}
		if jitter.Sleep(ctx, min(time.Duration(100<<min(attempt, 5))*time.Millisecond, 2*time.Second)) != nil {
			break
		}
	}
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		r.log.LogAttrs(ctx, slog.LevelWarn, "refresh: lease lost; result discarded", slog.String("connection", c.ID))
		_ = r.store.ReleaseRefresh(context.WithoutCancel(ctx), c.ID, holder, nil, false, r.now())
		r.count(c.Provider, "error")
		return result{}, true
	case err != nil:
		r.log.LogAttrs(ctx, slog.LevelError, "refresh: commit failed", slog.String("connection", c.ID), slog.Any("err", err))
		r.count(c.Provider, "error")
		return result{row: cl.Row, err: err}, false
	}
	r.fail.hit("after_commit")
	r.count(c.Provider, "success")
	r.emit(ctx, EventRefreshed, conn, "")
	row := store.ConnectionCredential{Connection: conn, Credential: cl.Row.Credential}
	return result{row: row, fresh: &tok}, false
}

// failed records a failed refresh by its class.
func (r *Refresher) failed(ctx context.Context, cl store.Claim, holder string, f *Failure) (result, bool) {
	c := cl.Row.Connection
	now := r.now()
	st, _ := r.store.RefreshStateOf(ctx, c.ID)
	ev := audit.Event{WorkspaceID: c.WorkspaceID, At: now, Type: audit.TokenRefresh, Actor: actor, ConnectionID: c.ID,
		Outcome: audit.Failure, ErrorCode: f.Code}
	rf := store.RefreshFailure{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Holder: holder, Version: c.Version,
		ErrorCode: f.Code, Now: now}
	outcome := "unavailable"
	switch f.Class {
	case ClassInvalidGrant:
		// The fence re-reads the row: if another refresh or a reconnect changed it since our
		// claim, FailRefresh answers ErrLeaseLost and we read the new row instead.
		rf.Status = store.StatusNeedsReauth
		ev.Data = eventData("provider", c.Provider, "status", store.StatusNeedsReauth, "webhook", "connection.needs_reauth")
		outcome = "needs_reauth"
	default:
		d := backoff(st.Failures+1, r.cfg.BackoffBase, r.cfg.BackoffMax)
		if f.Class == ClassRateLimited {
			d = max(d, f.RetryAfter)
			rf.RateLimited = true
		}
		until := now.Add(d).UTC()
		next := until.Add(r.cfg.Lead) // due (next − lead) when the cooldown ends
		rf.BackoffUntil, rf.NextRefreshAt = &until, &next
		hook := ""
		if st.Failures == 0 {
			hook = "connection.refresh_failed" // once per streak, not per attempt
		}
		ev.Data = eventData("provider", c.Provider, "webhook", hook)
	}
	rf.Events = []audit.Event{ev}
	conn, _, err := r.store.FailRefresh(ctx, rf)
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		// The row moved since our claim (another refresh, a reconnect): read it again.
		_ = r.store.ReleaseRefresh(context.WithoutCancel(ctx), c.ID, holder, nil, false, r.now())
		return result{}, true
	case err != nil:
		r.log.LogAttrs(ctx, slog.LevelError, "refresh: recording failure", slog.String("connection", c.ID), slog.Any("err", err))
		r.count(c.Provider, "error")
		return result{row: cl.Row, err: err}, false
	}
	r.log.LogAttrs(ctx, slog.LevelWarn, "refresh failed", slog.String("connection", c.ID), slog.String("provider", c.Provider),
		slog.String("error_code", f.Code), slog.Int("status", f.Status))
	r.count(c.Provider, outcome)
	r.emit(ctx, EventFailed, conn, f.Code)
	if conn.Status != c.Status {
		r.emit(ctx, EventStatusChanged, conn, f.Code)
	}
	row := store.ConnectionCredential{Connection: conn, Credential: cl.Row.Credential}
	if f.Class == ClassInvalidGrant {
		return result{row: row, err: ErrNeedsReauth}, false
	}
	return result{row: row, err: ErrUnavailable}, false
}

func (r *Refresher) count(provider, outcome string) {
	if r.metrics != nil {
		r.metrics.Refresh(provider, outcome)
	}
}

// hostLimits bounds concurrent provider calls per host.
type hostLimits struct {
	n  int
	mu sync.Mutex
	m  map[string]chan struct{}
}

func newHostLimits(n int) *hostLimits { return &hostLimits{n: n, m: map[string]chan struct{}{}} }

func (h *hostLimits) acquire(ctx context.Context, host string) (func(), error) {
	h.mu.Lock()
	ch, ok := h.m[host]
	if !ok {
		ch = make(chan struct{}, h.n)
		h.m[host] = ch
	}
	h.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Host
}

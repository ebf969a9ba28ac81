package refresher

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// HealthCheck is the audit event type of a failed (or recovered) health check of a typed
// (api_key or basic) connection.
const HealthCheck = "connection.health_check"

// checkHealth checks one leased typed (api_key or basic) connection against its provider's
// health_check_url: 2xx passes (an errored connection becomes active again), 401/403 marks
// it error, anything else is retried after a backoff without changing its status. A
// provider without a health check URL is not scheduled again.
func (r *Refresher) checkHealth(ctx context.Context, holder string, cc store.ConnectionCredential) {
	now := r.now()
	// release gives the lease back; after d (due then: next − lead), or never when d is 0.
	release := func(d time.Duration) {
		var next *time.Time
		if d > 0 {
			t := now.Add(d + r.cfg.Lead).UTC()
			next = &t
		}
		if err := r.store.ReleaseRefresh(context.WithoutCancel(ctx), cc.ID, holder, next, next == nil, now); err != nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "health: release", slog.String("connection", cc.ID), slog.Any("err", err))
		}
	}
	prov, _, err := r.providers.Provider(ctx, cc.WorkspaceID, cc.Provider)
	if err == nil {
		prov, err = oauthflow.ConnectionProvider(prov, cc.Connection) // the connection's filled URLs
	}
	if err != nil || prov.HealthCheckURL == "" || len(prov.Placeholders()) > 0 || cc.Credential == nil || len(cc.Credential.APIKey) == 0 {
		release(0)
		return
	}
	cred, err := openCredential(ctx, r.creds, cc) // tokens.go
	if err != nil {
		release(r.cfg.BackoffBase)
		return
	}
	key := cred.Secret
	defer key.Wipe()
	use := vault.Use{WorkspaceID: cc.WorkspaceID, ConnectionID: cc.ID, Actor: actor, Purpose: vault.UseHealthCheck}
	if err := vault.CheckOrigin(ctx, r.audit, use, prov.HealthCheckURL, cred.Origins); err != nil {
		release(r.cfg.HealthInterval) // nothing sent; checked again later (a reconnect rebinds the key)
		return
	}
	status, err := r.probe(ctx, prov, cred.Kind, key)
	next := now.Add(r.cfg.HealthInterval + r.cfg.Lead).UTC()
	switch {
	case err == nil && status >= 200 && status < 300:
		ev := audit.Event{WorkspaceID: cc.WorkspaceID, At: now, Type: HealthCheck, Actor: actor, ConnectionID: cc.ID,
			Outcome: audit.Success, Data: eventData("provider", cc.Provider, "status", store.StatusActive)}
		if conn, err := r.store.HealthOK(ctx, cc.WorkspaceID, cc.ID, holder, cc.Version, &next, now, ev); err != nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "health: record", slog.String("connection", cc.ID), slog.Any("err", err))
		} else if conn.Status != cc.Status {
			r.emit(ctx, EventStatusChanged, conn, "")
		}
	case err == nil && (status == http.StatusUnauthorized || status == http.StatusForbidden):
		ev := audit.Event{WorkspaceID: cc.WorkspaceID, At: now, Type: HealthCheck, Actor: actor, ConnectionID: cc.ID,
			Outcome: audit.Failure, ErrorCode: "health_check_failed",
			Data: eventData("provider", cc.Provider, "status", store.StatusError)}
		if cc.Status == store.StatusError {
			ev = audit.Event{}
		}
		f := store.RefreshFailure{WorkspaceID: cc.WorkspaceID, ConnectionID: cc.ID, Holder: holder, Version: cc.Version,
			Status: store.StatusError, ErrorCode: "health_check_failed", NextRefreshAt: &next, Now: now}
		if ev.Type != "" {
			f.Events = []audit.Event{ev}
		}
		if conn, _, err := r.store.FailRefresh(ctx, f); err != nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "health: record", slog.String("connection", cc.ID), slog.Any("err", err))
		} else if conn.Status != cc.Status {
			r.emit(ctx, EventStatusChanged, conn, "")
		}
	default:
		release(backoff(1, r.cfg.BackoffBase, r.cfg.BackoffMax))
	}
}

// probe GETs the provider's health check URL with the credential injected as the
// forwarding proxy injects it (oauthflow.Provider.Authorize). Only the status is kept; the body is drained (capped) and dropped.
func (r *Refresher) probe(ctx context.Context, p oauthflow.Provider, mode oauthflow.AuthMode, key vault.Secret) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.HealthCheckURL, nil)
	if err != nil {
		return 0, err
	}
	for k, v := range p.StaticHeaders {
		req.Header.Set(k, v)
	}
	if err := p.Authorize(req, mode, key); err != nil { // as the forwarding proxy injects it
		return 0, err
	}
	slot, err := r.limits.acquire(ctx, req.URL.Host)
	if err != nil {
		return 0, err
	}
	defer slot()
	hc, err := r.clientFor(p) // the provider's TLS floor and pins (provider_tls.go)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

package app

import (
	"context"
	"time"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/refresher"
)

// newRefresher builds the webhook dispatcher and the token refresher that runs it: provider
// calls and webhook deliveries go through their own SSRF-guarded client that follows no
// redirect. The refresher reports to the control-plane link when one is built (before it).
func (a *App) newRefresher(now func() time.Time) error {
	oc, err := outbound.New(outbound.Policy{AllowCIDRs: a.Config.OutboundAllowCIDRs}, outbound.WithLogger(a.Log))
	if err != nil {
		return err
	}
	hc := oc.TokenClient()
	providers, err := ProviderClients(a.Config, a.Log, a.Metrics.Registry()) // per-provider TLS floor and pins (tls.go)
	if err != nil {
		return err
	}
	w, err := refresher.NewWebhooks(refresher.WebhookConfig{}, a.Store, a.Creds, hc, now, a.Log)
	if err != nil {
		return err
	}
	w.ObserveDeliveries(a.Metrics.WebhookDelivery)
	opts := []refresher.Option{refresher.WithLogger(a.Log), refresher.WithClock(now), refresher.WithMetrics(a.Metrics),
		refresher.WithLatencyHook(a.Metrics.RefreshDuration),
		refresher.WithProviderClient(providerTokenClient(providers)), refresher.WithWebhooks(w)}
	// refreshed, refresh_failed, status_changed: to the anomaly detection, and to the control
	// plane when there is one.
	events := refresherEvents{audit: a.Audit}
	if a.ControlPlane != nil {
		events.cp = a.ControlPlane
	}
	opts = append(opts, refresher.WithEvents(events))
	a.Refresher, err = refresher.New(refresher.Config{Schedule: a.Config.RefreshSchedule, Lead: a.Config.RefreshLead,
		ForcedInterval: a.Config.ForcedRefreshInterval, ExpiringLead: a.Config.RefreshTokenExpiringLead},
		refresher.Deps{Store: a.Store, Creds: a.Creds, HTTPClient: hc,
			Providers: a.Providers}, opts...)
	if err != nil {
		return err
	}
	a.Revocations, err = refresher.NewRevocations(a.Refresher, a.Store, a.Config.Retention)
	if err != nil {
		return err
	}
	a.Incidents, err = refresher.NewIncidents(a.Refresher, a.Revocations, a.Store)
	return err
}

// refresherEvents tells the anomaly detection of the refresher's events, and sends them to
// the control plane (cp nil: standalone), its failure codes mapped onto the control
// plane's fixed set.
type refresherEvents struct {
	cp    controlplane.Emitter
	audit *audit.Batcher
}

var _ refresher.EventSink = refresherEvents{}

func (e refresherEvents) Emit(ctx context.Context, ev refresher.Event) {
	refreshOutcomes(e.audit, ev) // anomaly.go
	if e.cp == nil {
		return
	}
	out := controlplane.Event{Type: controlplane.EventType(ev.Type), WorkspaceID: ev.WorkspaceID, ConnectionID: ev.ConnectionID,
		Provider: ev.Provider, Status: controlplane.Status(ev.Status)}
	if ev.Code != "" {
		out.ErrorCode = refreshErrorCode(ev.Code)
	}
	e.cp.Emit(ctx, out)
}

// refreshErrorCode maps a refresh failure's code (refresher.Failure.Code: an RFC 6749
// code, or one of the refresher's own) onto the control plane's fixed set. Unknown codes
// become "unknown", so nothing but the set ever crosses.
func refreshErrorCode(code string) controlplane.ErrorCode {
	switch code {
	case "invalid_grant":
		return controlplane.ErrorInvalidGrant
	case "invalid_client", "unauthorized_client":
		return controlplane.ErrorInvalidClient
	case "rate_limited":
		return controlplane.ErrorRateLimited
	case "provider_unavailable", "provider_error", "invalid_token_response", "invalid_request", "invalid_scope",
		"unsupported_grant_type", "unsupported_response_type", "server_error", "temporarily_unavailable", "access_denied",
		"invalid_token", "unsupported_token_type":
		return controlplane.ErrorProviderError
	case "network_error", "timeout", "unsafe_url":
		return controlplane.ErrorNetwork
	case "kms_unavailable":
		return controlplane.ErrorKMSUnavailable
	}
	return controlplane.ErrorUnknown
}

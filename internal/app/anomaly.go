package app

import (
	"context"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/refresher"
)

// anomalyOptions turns the configuration into the detector's options
// (internal/audit/anomaly*.go): the client baseline is kept in the store under the admin
// service's anomaly key, which is only asked for once the detector has clients to learn.
func (a *App) anomalyOptions() *audit.AnomalyOptions {
	c := a.Config
	return &audit.AnomalyOptions{Window: c.AnomalyWindow, KeyConnections: c.AnomalyKeyConnections,
		RefusedReads: c.AnomalyRefusedReads, Clients: a.Store, ClientWarmup: c.AnomalyClientWarmup,
		ClientsPerKey: int(c.AnomalyClientsPerKey), ClientKey: func(ctx context.Context) ([]byte, error) {
			return a.Admin.AnomalyClientKey(ctx) // built after the batcher, used once it runs
		},
		ProviderFailures: c.AnomalyProviderFailures, ProviderNeedsReauth: c.AnomalyProviderNeedsReauth,
		RefreshStorm: c.AnomalyRefreshStorm, OnAnomaly: a.onAnomaly}
}

// onAnomaly is told of each finding of the anomaly detection (internal/audit/anomaly.go),
// after its security.anomaly event is queued (the workspace's webhook follows from that
// event: refresher.MapEvent): counted (bounded kind label), logged, and sent to the control
// plane as metadata — the kind, the key id or provider key, counts and the window, never a
// credential, a client address or certificate.
func (a *App) onAnomaly(f audit.Anomaly) {
	a.Metrics.SecurityAnomaly(f.Kind)
	a.Log.Warn("security anomaly", "kind", f.Kind, "workspace_id", f.WorkspaceID, "api_key_id", f.APIKeyID,
		"provider", f.Provider, "connection_id", f.ConnectionID, "count", f.Count, "baseline", f.Baseline,
		"window", f.Window.String())
	if a.ControlPlane != nil {
		a.ControlPlane.Emit(context.Background(), anomalyEvent(f))
	}
}

// anomalyEvent is a finding as the control plane's metadata event.
func anomalyEvent(f audit.Anomaly) controlplane.Event {
	return controlplane.Event{Type: controlplane.EventSecurityAnomaly, WorkspaceID: f.WorkspaceID, Provider: f.Provider,
		ConnectionID: f.ConnectionID, Anomaly: &controlplane.Anomaly{Kind: controlplane.AnomalyKind(f.Kind),
			APIKeyID: f.APIKeyID, Count: f.Count, Baseline: f.Baseline, WindowSeconds: int64(f.Window.Seconds())}}
}

// refreshOutcomes tells the detector of the refresher's committed outcomes
// (internal/audit/anomaly_refresh.go).
func refreshOutcomes(b *audit.Batcher, ev refresher.Event) {
	switch {
	case ev.Type == refresher.EventRefreshed:
		b.ObserveRefresh(ev.WorkspaceID, ev.Provider, ev.ConnectionID, audit.RefreshSucceeded)
	case ev.Type == refresher.EventFailed:
		b.ObserveRefresh(ev.WorkspaceID, ev.Provider, ev.ConnectionID, audit.RefreshFailed)
	case ev.Type == refresher.EventStatusChanged && ev.Status == "needs_reauth":
		b.ObserveRefresh(ev.WorkspaceID, ev.Provider, ev.ConnectionID, audit.RefreshNeedsReauth)
	}
}

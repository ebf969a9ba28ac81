package app

import (
	"time"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/proxy"
	"github.com/authpipe/authpipe-proxy/refresher"
)

// newRefresher builds the token refresher and the webhook dispatcher: provider calls and
// webhook deliveries go through their own SSRF-guarded client that follows no redirect.
func (a *App) newRefresher(catalog *oauthflow.Catalog, now func() time.Time) error {
	oc, err := outbound.New(outbound.Policy{AllowCIDRs: a.Config.OutboundAllowCIDRs}, outbound.WithLogger(a.Log))
	if err != nil {
		return err
	}
	hc := oc.TokenClient()
	providers, err := ProviderClients(a.Config, a.Log, a.Metrics.Registry()) // per-provider TLS floor and pins (tls.go)
	if err != nil {
		return err
	}
	r, err := refresher.New(refresher.Config{Schedule: a.Config.RefreshSchedule, Lead: a.Config.RefreshLead},
		refresher.Deps{Store: a.Store, Creds: a.Creds, HTTPClient: hc,
			Providers: proxy.ProviderSource{Store: a.Store, Secrets: a.Secrets, Catalog: catalog}},
		refresher.WithLogger(a.Log), refresher.WithClock(now), refresher.WithMetrics(a.Metrics),
		refresher.WithProviderClient(providerTokenClient(providers)))
	if err != nil {
		return err
	}
	w, err := refresher.NewWebhooks(refresher.WebhookConfig{}, a.Store, a.Creds, hc, now, a.Log)
	if err != nil {
		return err
	}
	r.SetWebhooks(w)
	a.Refresher = r
	return nil
}

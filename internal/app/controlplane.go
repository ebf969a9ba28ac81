package app

import (
	"context"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/proxy"
)

// WithControlPlaneOptions passes options to the control-plane link (tests shorten its
// intervals with them).
func WithControlPlaneOptions(opts ...controlplane.Option) Option {
	return func(o *options) { o.cpOpts = append(o.cpOpts, opts...) }
}

// newControlPlane builds the control-plane link when one is configured, on its own
// outbound client (the control plane's pins and CA bundle, no redirects, TLS 1.3). It
// returns the proxy's event sink: the link, or nil when standalone. The refresher (built
// after it) reports to the same link.
func (a *App) newControlPlane(cfg config.Config, o options) (proxy.EventSink, error) {
	if !cfg.ControlPlaneEnabled() {
		return nil, nil
	}
	pol, err := ControlPlanePolicy(cfg)
	if err != nil {
		return nil, err
	}
	pol.MaxResponseBytes = controlplane.MaxConfigBytes + 64<<10
	hc, err := outbound.New(pol, outbound.WithLogger(a.Log), OutboundMetrics(a.Metrics.Registry())) // pin failures counted (tls.go)
	if err != nil {
		return nil, &ConfigError{Var: config.EnvControlPlanePins, Err: err}
	}
	opts := append([]controlplane.Option{controlplane.WithLogger(a.Log), controlplane.WithClock(o.now),
		controlplane.WithHealth(func(ctx context.Context) controlplane.Health {
			if a.Store.Ping(ctx) != nil {
				return controlplane.HealthDegraded
			}
			return controlplane.HealthOK
		})}, o.cpOpts...)
	a.ControlPlane, err = controlplane.New(controlplane.Config{URL: cfg.ControlPlaneURL, Token: cfg.ControlPlaneToken,
		PublicKey: cfg.ControlPlanePublicKey}, ControlPlaneStore(a.Store), hc.ControlPlaneClient(), opts...)
	if err != nil {
		return nil, &ConfigError{Var: config.EnvControlPlaneURL, Err: err}
	}
	return a.ControlPlane, nil
}

package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/providers"
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
	if err := a.Metrics.ObserveControlPlaneRefusals(a.ControlPlane.Refused); err != nil {
		return nil, err
	}
	return a.ControlPlane, nil
}

// configImport applies the control plane's configuration documents through the providers
// service: each provider is built and validated by the same function as
// PUT /v1/providers/{key}, and a document is written all or nothing.
type configImport struct{ svc *providers.Service }

var _ controlplane.ConfigApplier = configImport{}

// ConfigImport is the ConfigApplier the control-plane link applies pulled documents with.
func (a *App) ConfigImport() controlplane.ConfigApplier { return configImport{a.Providers} }

// ApplyControlPlaneConfig implements controlplane.ConfigApplier. A refused document's
// error wraps controlplane.ErrInvalidConfig: controlplane.ErrOriginChange or
// ErrClientSecretChange (which wrap it) when it would change an existing provider's
// origins or client secret.
func (ci configImport) ApplyControlPlaneConfig(ctx context.Context, doc controlplane.ConfigDocument) error {
	workspaces := make([]providers.WorkspaceImport, 0, len(doc.Workspaces))
	for _, ws := range doc.Workspaces {
		in := providers.WorkspaceImport{WorkspaceID: ws.WorkspaceID}
		for _, p := range ws.Providers {
			in.Providers = append(in.Providers, importOf(p))
		}
		workspaces = append(workspaces, in)
	}
	err := ci.svc.Import(ctx, controlplane.AuditActor, doc.Version, workspaces)
	if ie := (*providers.ImportError)(nil); errors.As(err, &ie) {
		switch {
		case errors.Is(err, providers.ErrOriginChange):
			return fmt.Errorf("%w: %w", controlplane.ErrOriginChange, err)
		case errors.Is(err, providers.ErrClientSecretChange):
			return fmt.Errorf("%w: %w", controlplane.ErrClientSecretChange, err)
		}
		return fmt.Errorf("%w: %w", controlplane.ErrInvalidConfig, err)
	}
	return err
}

// importOf maps a pulled provider onto the providers API's request: the endpoint fields
// and auth_mode are overrides of the template, as in a PUT body.
func importOf(p controlplane.ProviderConfigDoc) providers.Request {
	r := providers.Request{Key: p.Key, Template: p.Template, ClientID: p.ClientID, Scopes: p.Scopes,
		CallbackURLs: p.CallbackURLs, ReturnURLs: p.ReturnURLs, Overrides: map[string]json.RawMessage{}}
	for name, v := range map[string]string{"auth_mode": p.AuthMode, "authorization_url": p.AuthorizationURL,
		"token_url": p.TokenURL, "refresh_url": p.RefreshURL, "revocation_url": p.RevocationURL, "issuer": p.Issuer,
		"api_base_url": p.APIBaseURL, "health_check_url": p.HealthCheckURL} {
		if v != "" {
			r.Overrides[name], _ = json.Marshal(v)
		}
	}
	return r
}

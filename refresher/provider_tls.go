package refresher

import (
	"net/http"

	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// WithProviderClient makes every call to a provider (refresh, health check) go through
// the client f returns for it, so that the provider's min_tls_version and SPKI pins apply
// (outbound.Clients.For, docs/security.md). Deps.HTTPClient serves only when no such
// function is set. An error from f fails the call; it never falls back to an unpinned
// client.
func WithProviderClient(f func(p oauthflow.Provider) (*http.Client, error)) Option {
	return func(r *Refresher) { r.providerClient = f }
}

// clientFor is the HTTP client for provider p.
func (r *Refresher) clientFor(p oauthflow.Provider) (*http.Client, error) {
	if r.providerClient == nil {
		return r.http, nil
	}
	return r.providerClient(p)
}

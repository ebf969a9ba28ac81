package proxy

import (
	"context"

	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// connectProviders resolves the connect flows' provider configurations
// (oauthflow.FlowProviders) from the workspace's stored ones.
type connectProviders struct {
	s       *Server
	secrets ProviderSource
}

var _ oauthflow.FlowProviders = connectProviders{}

// FlowConfig implements oauthflow.FlowProviders.
func (cp connectProviders) FlowConfig(ctx context.Context, workspaceID, key string) (oauthflow.FlowConfig, error) {
	_, cfg, err := cp.s.workspaceProvider(ctx, workspaceID, key)
	if err != nil {
		return oauthflow.FlowConfig{}, err
	}
	return oauthflow.FlowConfig{Provider: cfg.Provider, ClientID: cfg.ClientID, Scopes: cfg.Scopes,
		CallbackURLs: cfg.CallbackURLs, ReturnURLs: cfg.ReturnURLs}, nil
}

// ClientCredentials implements oauthflow.FlowProviders.
func (cp connectProviders) ClientCredentials(ctx context.Context, workspaceID, key string) (oauthflow.ClientCredentials, error) {
	_, client, err := cp.secrets.Provider(ctx, workspaceID, key)
	return client, err
}

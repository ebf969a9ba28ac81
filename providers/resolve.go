package providers

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Resolve returns a connection's provider: the workspace's configuration under key, else
// the catalog's template of that name when its connections need no workspace client
// (oauthflow.Provider.NeedsWorkspaceClient: api_key, basic, jwt_bearer with the
// connection's key, client credentials with the connection's own client), else
// store.ErrNotFound. configured says which of the two it is.
func (s *Service) Resolve(ctx context.Context, workspaceID, key string) (e Entry, configured bool, err error) {
	e, err = s.Get(ctx, workspaceID, key)
	switch {
	case err == nil:
		return e, true, nil
	case !errors.Is(err, store.ErrNotFound):
		return Entry{}, false, err
	}
	if t, ok := s.catalog.Get(key); ok && !t.NeedsWorkspaceClient() {
		return Entry{WorkspaceID: workspaceID, Key: key, Config: Config{Provider: t}}, false, nil
	}
	return Entry{}, false, err
}

// Provider resolves a connection's provider (Resolve) with its client credentials: the
// client id and the opened client secret of a configured provider, none for a template.
// It implements refresher.Providers; revocation uses it too.
func (s *Service) Provider(ctx context.Context, workspaceID, key string) (oauthflow.Provider, oauthflow.ClientCredentials, error) {
	e, configured, err := s.Resolve(ctx, workspaceID, key)
	if err != nil || !configured {
		return e.Provider, oauthflow.ClientCredentials{}, err
	}
	client, err := s.Client(ctx, e)
	if err != nil {
		return oauthflow.Provider{}, oauthflow.ClientCredentials{}, err
	}
	return e.Provider, client, nil
}

// Client returns a configured provider's client credentials: its client id and, when one
// is set, its client secret opened with the client_secrets keyring. This is the one place
// a client secret is opened.
func (s *Service) Client(ctx context.Context, e Entry) (oauthflow.ClientCredentials, error) {
	client := oauthflow.ClientCredentials{ClientID: e.ClientID}
	sec, err := s.store.ProviderSecret(ctx, e.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return client, nil
	case err != nil:
		return oauthflow.ClientCredentials{}, err
	}
	client.SecretOrigins = store.BoundOrigins(sec.Origins)
	if client.ClientSecret, err = s.secrets.Open(ctx, vault.ClientSecretBinding(e.WorkspaceID, e.ID, client.SecretOrigins), sec.Sealed); err != nil {
		return oauthflow.ClientCredentials{}, err
	}
	if len(sec.NextSealed) > 0 { // an OAuth app's secret rotation: the next one, same binding
		client.NextSecretOrigins = store.BoundOrigins(sec.NextOrigins)
		if client.NextSecret, err = s.secrets.Open(ctx, vault.ClientSecretBinding(e.WorkspaceID, e.ID, client.NextSecretOrigins), sec.NextSealed); err != nil {
			return oauthflow.ClientCredentials{}, err
		}
	}
	return client, nil
}

// ResolveCached is Resolve's provider for the forwarding path: lookups are cached for
// resolveCacheTTL, so a provider update reaches forwards within that time. The
// configuration holds no secret.
func (s *Service) ResolveCached(ctx context.Context, workspaceID, key string) (oauthflow.Provider, error) {
	ck := workspaceID + "\x00" + key
	if p, ok := s.cache.get(ck, s.now()); ok {
		return p, nil
	}
	e, _, err := s.Resolve(ctx, workspaceID, key)
	if err != nil {
		return oauthflow.Provider{}, err
	}
	s.cache.put(ck, e.Provider, s.now())
	return e.Provider, nil
}

const resolveCacheTTL = time.Second

// resolveCache is a small TTL cache of resolved providers.
type resolveCache struct {
	mu sync.RWMutex
	m  map[string]cachedProvider
}

type cachedProvider struct {
	p       oauthflow.Provider
	expires time.Time
}

func (c *resolveCache) get(k string, now time.Time) (oauthflow.Provider, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return oauthflow.Provider{}, false
	}
	return e.p, true
}

func (c *resolveCache) put(k string, p oauthflow.Provider, now time.Time) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= 10_000 {
		c.m = make(map[string]cachedProvider)
	}
	c.m[k] = cachedProvider{p: p, expires: now.Add(resolveCacheTTL)}
	c.mu.Unlock()
}

var _ oauthflow.FlowProviders = (*Service)(nil)

// FlowConfig implements oauthflow.FlowProviders: the workspace's configuration of key
// (store.ErrNotFound when it has none) as the connect flows need it.
func (s *Service) FlowConfig(ctx context.Context, workspaceID, key string) (oauthflow.FlowConfig, error) {
	e, err := s.Get(ctx, workspaceID, key)
	if err != nil {
		return oauthflow.FlowConfig{}, err
	}
	return oauthflow.FlowConfig{Provider: e.Provider, ClientID: e.ClientID, Scopes: e.Scopes,
		CallbackURLs: e.CallbackURLs, ReturnURLs: e.ReturnURLs}, nil
}

// ClientCredentials implements oauthflow.FlowProviders: Provider's client credentials.
func (s *Service) ClientCredentials(ctx context.Context, workspaceID, key string) (oauthflow.ClientCredentials, error) {
	_, client, err := s.Provider(ctx, workspaceID, key)
	return client, err
}

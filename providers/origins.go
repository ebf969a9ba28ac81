package providers

import (
	"errors"
	"slices"
	"strings"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// The origin rules (API.md "Origin binding"): the origins of a provider are the canonical
// origins (vault.OriginOf) of its endpoint URLs, the places a credential or the client
// secret is presented to: authorization_url, token_url, refresh_url, revocation_url,
// api_base_url and health_check_url. issuer is not one: it is an identifier compared
// with the callback's iss parameter, never called with a credential.
//
// A provider's origins change when a write's set differs from the set of the
// configuration its connections resolve to now (Resolve: the stored configuration, else
// the catalog's api_key template of that key). Such a change needs a Caller with Admin
// and, for oauth2, the client secret in the same request; it puts the provider's
// connections into needs_reauth (store.ReasonProviderOriginChanged). The control-plane
// import never changes an existing provider's origins (ErrOriginChange).

var (
	// ErrOriginChange is an import (wrapped in *ImportError) that would change the
	// endpoint origins of a provider its connections already resolve to.
	ErrOriginChange = errors.New("providers: an import may not change an existing provider's endpoint origins")
	// ErrClientSecretChange is an import (wrapped in *ImportError) that carries a client
	// secret: an import never sets, replaces or clears one.
	ErrClientSecretChange = errors.New("providers: an import may not set or clear a client secret")
)

// Caller is who writes a provider: Actor names it in audit events; Admin says it holds
// scope admin, which an origin change needs.
type Caller struct {
	Actor string
	Admin bool
}

// Origins returns the sorted, distinct canonical origins (vault.OriginOf) of p's
// endpoint URLs. A URL without one (a template URL holding a {placeholder}) counts as its
// scheme and authority in lower case, so a change of its host is still seen.
func Origins(p oauthflow.Provider) []string {
	var out []string
	for _, raw := range []string{p.AuthorizationURL, p.TokenURL, p.RefreshURL, p.RevocationURL, p.APIBaseURL, p.HealthCheckURL} {
		if raw == "" {
			continue
		}
		o := vault.OriginOf(raw)
		if o == "" {
			o = strings.ToLower(authority(raw))
		}
		out = append(out, o)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// authority is raw up to the end of its authority (before the path, query or fragment).
func authority(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	if j := strings.IndexAny(raw[i+3:], "/?#"); j >= 0 {
		return raw[:i+3+j]
	}
	return raw
}

// sameOrigins reports whether a and b have the same origins.
func sameOrigins(a, b oauthflow.Provider) bool { return slices.Equal(Origins(a), Origins(b)) }

// originChanged reports whether cfg, written under key over stored (nil: none), changes
// the origins the workspace's connections of key resolve to: the stored configuration's,
// else those of the catalog's template of that name when Resolve would serve it.
func (s *Service) originChanged(key string, stored *store.Provider, cfg Config) (bool, error) {
	var base oauthflow.Provider
	if stored != nil {
		e, err := entryOf(*stored)
		if err != nil {
			return false, err
		}
		base = e.Provider
	} else if t, ok := s.catalog.Get(key); ok && !t.NeedsWorkspaceClient() {
		base = t
	} else {
		return false, nil
	}
	return !sameOrigins(base, cfg.Provider), nil
}

// checkOriginChange is the API's rule for a write that changes origins: scope admin
// (403 forbidden), then, for a mode whose configuration holds a client secret bound to the
// old token origin (oauth2, github_app, a client-credentials or jwt_bearer provider with a
// client id), a client secret in the same request (400 client_secret_required).
func checkOriginChange(by Caller, cfg Config, secretGiven bool) error {
	if !by.Admin {
		return problem.ErrForbidden.WithDetail("changing a provider's endpoint origins needs scope admin")
	}
	if cfg.HoldsClientSecret() && (cfg.NeedsWorkspaceClient() || cfg.ClientID != "") && !secretGiven {
		return problem.ErrClientSecretRequired.WithField("client_secret",
			"required when the endpoint origins of a provider with a client secret change")
	}
	return nil
}

// differsFromTemplate reports whether e's origins differ from those of the catalog
// template it names (Template) or whose name it takes (its key).
func (s *Service) differsFromTemplate(e Entry) bool {
	for _, name := range []string{e.Template, e.Key} {
		if name == "" {
			continue
		}
		if t, ok := s.catalog.Get(name); ok && !sameOrigins(t, e.Provider) {
			return true
		}
	}
	return false
}

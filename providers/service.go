package providers

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Store is the persistence the service needs; *store.Store satisfies it.
type Store interface {
	Workspace(ctx context.Context, id string) (store.Workspace, error)
	Provider(ctx context.Context, workspaceID, key string) (store.Provider, error)
	ListProviders(ctx context.Context, workspaceID string) ([]store.Provider, error)
	ProviderSecret(ctx context.Context, providerID string) (store.ProviderSecret, error)
	WriteProvider(ctx context.Context, w store.ProviderWrite) (store.ProviderWritten, error)
	PromoteNextClientSecret(ctx context.Context, workspaceID, key string, drop bool, now time.Time, evs ...audit.Event) error
	PutProviders(ctx context.Context, ps []store.Provider, guard func(stored *store.Provider, next store.Provider) error, evs ...audit.Event) ([]store.Provider, error)
	DeleteProvider(ctx context.Context, workspaceID, key string, evs ...audit.Event) error
}

var _ Store = (*store.Store)(nil)

// Sealer seals and opens client secrets: the client_secrets keyring (*vault.Keyring).
type Sealer interface {
	Seal(ctx context.Context, b vault.Binding, plaintext vault.Secret) ([]byte, error)
	Open(ctx context.Context, b vault.Binding, envelope []byte) (vault.Secret, error)
}

var _ Sealer = (*vault.Keyring)(nil)

// Settings are the deployment's values the service applies.
type Settings struct {
	// PublicURL is the URL end users' browsers reach (no trailing slash): an oauth2
	// provider's default callback URL is PublicURL + "/v1/oauth/callback".
	PublicURL string
	// URLs is the rule for every endpoint URL of a provider.
	URLs URLPolicy
}

// Option configures New.
type Option func(*Service)

// WithClock injects the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// Service owns the workspaces' provider configurations.
type Service struct {
	set     Settings
	store   Store
	secrets Sealer
	catalog *oauthflow.Catalog
	now     func() time.Time
	cache   resolveCache
}

// New builds the service. secrets must be the client_secrets keyring.
func New(set Settings, st Store, secrets Sealer, catalog *oauthflow.Catalog, opts ...Option) (*Service, error) {
	if st == nil || secrets == nil || catalog == nil {
		return nil, errors.New("providers: store, secrets and catalog are required")
	}
	if set.PublicURL == "" {
		return nil, errors.New("providers: PublicURL is required")
	}
	set.PublicURL = strings.TrimRight(set.PublicURL, "/")
	s := &Service{set: set, store: st, secrets: secrets, catalog: catalog, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Catalog is the provider catalog the service resolves templates from.
func (s *Service) Catalog() *oauthflow.Catalog { return s.catalog }

// URLPolicy is the rule every provider endpoint URL passes; webhook URLs pass it too.
func (s *Service) URLPolicy() URLPolicy { return s.set.URLs }

// PutResult is a written provider's view with the number of its connections the write
// put into needs_reauth (an origin change); Reauthed are those connections as stored.
type PutResult struct {
	View
	ConnectionsNeedingReauth int                `json:"connections_needing_reauth"`
	Reauthed                 []store.Connection `json:"-"`
}

// Put builds and validates r (Build) and creates or replaces the workspace's provider,
// with a provider.updated event by the caller. A nil or empty secret keeps the client
// secret set before.
//
// A write that changes the provider's endpoint origins (origins.go) needs by.Admin (403
// forbidden) and, for a mode with a client secret, a secret (400 client_secret_required); it is decided under
// the provider's row lock, and in the same transaction every active or errored
// connection of the provider becomes needs_reauth (reason provider_origin_changed), each
// with a connection.needs_reauth event. Nothing is written when it is refused.
func (s *Service) Put(ctx context.Context, workspaceID string, by Caller, r Request, secret *vault.Secret) (PutResult, error) {
	return s.PutWithNext(ctx, workspaceID, by, r, secret, nil)
}

// PutWithNext is Put with an OAuth app's next client secret (client_secret_next) during
// a secret rotation: sealed with the same binding as the current one (the token origins
// of the configuration stored with it), kept beside it, tried when the provider answers
// invalid_client to the current one (oauthflow), until PromoteNextSecret or
// DropNextSecret. A new current secret without a next one ends a rotation (the next one
// is dropped). Audited provider.client_secret_next_set.
func (s *Service) PutWithNext(ctx context.Context, workspaceID string, by Caller, r Request, secret, next *vault.Secret) (PutResult, error) {
	cfg, err := s.Build(r)
	if err != nil {
		return PutResult{}, err
	}
	now := s.now().UTC()
	id, existingID := ids.New(ids.Provider), ""
	if existing, err := s.store.Provider(ctx, workspaceID, r.Key); err == nil {
		id, existingID = existing.ID, existing.ID
	} else if !errors.Is(err, store.ErrNotFound) {
		return PutResult{}, err
	}
	secretGiven, nextGiven := secret != nil && !secret.IsZero(), next != nil && !next.IsZero()
	if secretGiven && !cfg.HoldsClientSecret() {
		return PutResult{}, problem.ErrInvalidRequest.WithField("client_secret", "this provider's auth mode has no client secret")
	}
	if err := s.checkKeptSecret(ctx, existingID, cfg, secretGiven, nextGiven); err != nil { // clientcert.go
		return PutResult{}, err
	}
	var ps *store.ProviderSecret
	if secretGiven {
		prefix, err := s.secretPrefix(cfg, "client_secret", *secret) // a tls_client_auth certificate is checked
		if err != nil {
			return PutResult{}, err
		}
		// Bound to the token, refresh and revocation origins of the configuration stored
		// with it; a secret kept by a later update keeps its binding.
		origins := cfg.ClientSecretOrigins()
		sealed, err := s.secrets.Seal(ctx, vault.ClientSecretBinding(workspaceID, id, origins), *secret)
		if err != nil {
			return PutResult{}, err
		}
		ps = &store.ProviderSecret{Sealed: sealed, Prefix: prefix, Origins: store.StoredOrigins(origins), UpdatedAt: now}
	}
	var nextRow *store.ProviderSecret
	evs := []audit.Event{{WorkspaceID: workspaceID, Type: audit.ProviderUpdated, Actor: by.Actor, Outcome: audit.Success,
		Data: audit.Data("provider", r.Key)}}
	if nextGiven {
		if !cfg.HoldsClientSecret() {
			return PutResult{}, problem.ErrInvalidRequest.WithField("client_secret_next", "this provider's auth mode has no client secret")
		}
		prefix, err := s.secretPrefix(cfg, "client_secret_next", *next)
		if err != nil {
			return PutResult{}, err
		}
		origins := cfg.RefreshTokenOrigins()
		sealed, err := s.secrets.Seal(ctx, vault.ClientSecretBinding(workspaceID, id, origins), *next)
		if err != nil {
			return PutResult{}, err
		}
		nextRow = &store.ProviderSecret{NextSealed: sealed, NextPrefix: prefix, NextOrigins: store.StoredOrigins(origins)}
		evs = append(evs, audit.Event{WorkspaceID: workspaceID, Type: audit.ProviderClientSecretNext, Actor: by.Actor,
			Outcome: audit.Success, Data: audit.Data("provider", r.Key)})
	}
	doc, err := json.Marshal(cfg)
	if err != nil {
		return PutResult{}, err
	}
	row := store.Provider{ID: id, WorkspaceID: workspaceID, Key: r.Key, AuthMode: string(cfg.AuthMode), Config: string(doc),
		CreatedAt: now, UpdatedAt: now}
	w, err := s.store.WriteProvider(ctx, store.ProviderWrite{Row: row, Secret: ps, Next: nextRow,
		KeepSecret: true, // an update without client_secret keeps the one set before
		Events:     evs,
		Guard: func(stored *store.Provider) (string, error) {
			changed, err := s.originChanged(r.Key, stored, cfg)
			if err != nil || !changed {
				return "", err
			}
			if err := checkOriginChange(by, cfg, secretGiven); err != nil {
				return "", err
			}
			return store.ReasonProviderOriginChanged, nil
		},
		Reauth: func(c store.Connection) audit.Event {
			return audit.Event{WorkspaceID: workspaceID, Type: audit.ConnectionNeedsReauth, Actor: by.Actor,
				ConnectionID: c.ID, Outcome: audit.Success, ErrorCode: c.StatusReason,
				Data: audit.Data("provider", r.Key, "status", store.StatusNeedsReauth)}
		},
	})
	if err != nil {
		return PutResult{}, err
	}
	v, err := s.view(ctx, w.Provider)
	if err != nil {
		return PutResult{}, err
	}
	return PutResult{View: v, ConnectionsNeedingReauth: len(w.Reauthed), Reauthed: w.Reauthed}, nil
}

// Get returns the provider configured in the workspace under key, or store.ErrNotFound.
func (s *Service) Get(ctx context.Context, workspaceID, key string) (Entry, error) {
	row, err := s.store.Provider(ctx, workspaceID, key)
	if err != nil {
		return Entry{}, err
	}
	return entryOf(row)
}

func entryOf(row store.Provider) (Entry, error) {
	e := Entry{ID: row.ID, WorkspaceID: row.WorkspaceID, Key: row.Key, CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt}
	if err := json.Unmarshal([]byte(row.Config), &e.Config); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// View returns the API's view of the workspace's provider key.
func (s *Service) View(ctx context.Context, workspaceID, key string) (View, error) {
	row, err := s.store.Provider(ctx, workspaceID, key)
	if err != nil {
		return View{}, err
	}
	return s.view(ctx, row)
}

// List returns the API's view of every provider of the workspace, by key.
func (s *Service) List(ctx context.Context, workspaceID string) ([]View, error) {
	rows, err := s.store.ListProviders(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	out := make([]View, 0, len(rows))
	for _, r := range rows {
		v, err := s.view(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Service) view(ctx context.Context, row store.Provider) (View, error) {
	e, err := entryOf(row)
	if err != nil {
		return View{}, err
	}
	v := View{Key: e.Key, Config: e.Config, OriginsDifferFromTemplate: s.differsFromTemplate(e),
		CreatedAt: e.CreatedAt.UTC(), UpdatedAt: e.UpdatedAt.UTC()}
	switch sec, err := s.store.ProviderSecret(ctx, row.ID); {
	case err == nil:
		v.ClientSecretSet, v.ClientSecretPrefix = true, sec.Prefix
		v.ClientSecretNextSet, v.ClientSecretNextPrefix = len(sec.NextSealed) > 0, sec.NextPrefix
		if v.ClientCertificate = certificateOf(sec.Prefix); v.ClientCertificate != nil { // clientcert.go
			v.ClientSecretPrefix = ""
		}
		if v.ClientCertificateNext = certificateOf(sec.NextPrefix); v.ClientCertificateNext != nil {
			v.ClientSecretNextPrefix = ""
		}
	case !errors.Is(err, store.ErrNotFound):
		return View{}, err
	}
	return v, nil
}

// Delete removes the workspace's provider key (and its client secret), with a
// provider.deleted event by actor.
func (s *Service) Delete(ctx context.Context, workspaceID, actor, key string) error {
	ev := audit.Event{WorkspaceID: workspaceID, Type: audit.ProviderDeleted, Actor: actor, Outcome: audit.Success,
		Data: audit.Data("provider", key)}
	return s.store.DeleteProvider(ctx, workspaceID, key, ev)
}

// PromoteNextSecret makes the provider's next client secret the current one (the end of
// an OAuth app's secret rotation); DropNextSecret abandons it. Both are audited
// (provider.client_secret_promoted, provider.client_secret_next_dropped) and answer
// 409 no_next_client_secret when there is none.
func (s *Service) PromoteNextSecret(ctx context.Context, workspaceID, actor, key string) (View, error) {
	return s.endRotation(ctx, workspaceID, actor, key, false)
}

// DropNextSecret deletes the provider's next client secret; see PromoteNextSecret.
func (s *Service) DropNextSecret(ctx context.Context, workspaceID, actor, key string) (View, error) {
	return s.endRotation(ctx, workspaceID, actor, key, true)
}

func (s *Service) endRotation(ctx context.Context, workspaceID, actor, key string, drop bool) (View, error) {
	typ := audit.ProviderClientSecretPromoted
	if drop {
		typ = audit.ProviderClientSecretNextDropped
	}
	ev := audit.Event{WorkspaceID: workspaceID, Type: typ, Actor: actor, Outcome: audit.Success, Data: audit.Data("provider", key)}
	if err := s.store.PromoteNextClientSecret(ctx, workspaceID, key, drop, s.now(), ev); err != nil {
		return View{}, err
	}
	return s.View(ctx, workspaceID, key)
}

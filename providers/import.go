package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// WorkspaceImport is the providers to create or replace in one workspace. Providers not
// listed are left alone.
type WorkspaceImport struct {
	WorkspaceID string
	Providers   []Request
}

// ImportError is an import refused by validation: a workspace that does not exist, a
// provider that Build refuses, or one that would change an existing provider's endpoint
// origins (Err is ErrOriginChange) or client secret (ErrClientSecretChange). Nothing of
// the import was written.
type ImportError struct {
	WorkspaceID string
	Key         string
	Err         error // nil when the workspace does not exist
}

func (e *ImportError) Error() string {
	if e.Err == nil {
		return "workspace " + e.WorkspaceID + " does not exist"
	}
	return "workspace " + e.WorkspaceID + " provider " + e.Key + ": " + e.Err.Error()
}

func (e *ImportError) Unwrap() error { return e.Err }

// Import builds and validates every provider with Build, exactly as the providers API
// does, and then writes them all in one transaction: one invalid provider and nothing is
// written (an *ImportError). An import may create providers and change anything of an
// existing one but its endpoint origins (ErrOriginChange, decided under the row lock
// like the API's rule, origins.go) and its client secret: it never carries one
// (ErrClientSecretChange), and a replaced provider keeps the one it has. Each
// provider.updated event names actor and carries version (the imported document's, 0
// for none) as config_version.
func (s *Service) Import(ctx context.Context, actor string, version int64, workspaces []WorkspaceImport) error {
	now := s.now().UTC()
	var rows []store.Provider
	var evs []audit.Event
	for _, ws := range workspaces {
		if _, err := s.store.Workspace(ctx, ws.WorkspaceID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return &ImportError{WorkspaceID: ws.WorkspaceID}
			}
			return err
		}
		for _, r := range ws.Providers {
			_, next := r.Overrides["client_secret_next"]
			if _, ok := r.Overrides["client_secret"]; ok || next {
				return &ImportError{WorkspaceID: ws.WorkspaceID, Key: r.Key, Err: ErrClientSecretChange}
			}
			cfg, err := s.Build(r)
			if err != nil {
				return &ImportError{WorkspaceID: ws.WorkspaceID, Key: r.Key, Err: err}
			}
			// A kept client secret must fit the imported token_auth_method (clientcert.go):
			// a certificate bundle is never sent as a plain secret, nor a secret as a bundle.
			if existing, err := s.store.Provider(ctx, ws.WorkspaceID, r.Key); err == nil {
				if err := s.checkKeptSecret(ctx, existing.ID, cfg, false, false); err != nil {
					return &ImportError{WorkspaceID: ws.WorkspaceID, Key: r.Key, Err: fmt.Errorf("%w: %w", ErrClientSecretChange, err)}
				}
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			doc, err := json.Marshal(cfg)
			if err != nil {
				return err
			}
			rows = append(rows, store.Provider{ID: ids.New(ids.Provider), WorkspaceID: ws.WorkspaceID, Key: r.Key,
				AuthMode: string(cfg.AuthMode), Config: string(doc), CreatedAt: now, UpdatedAt: now})
			evs = append(evs, audit.Event{WorkspaceID: ws.WorkspaceID, Type: audit.ProviderUpdated, Actor: actor,
				Outcome: audit.Success, Data: audit.Data("provider", r.Key, "config_version", strconv.FormatInt(version, 10))})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	guard := func(stored *store.Provider, next store.Provider) error {
		e, err := entryOf(next)
		if err != nil {
			return err
		}
		changed, err := s.originChanged(next.Key, stored, e.Config)
		if err != nil || !changed {
			return err
		}
		return &ImportError{WorkspaceID: next.WorkspaceID, Key: next.Key, Err: ErrOriginChange}
	}
	_, err := s.store.PutProviders(ctx, rows, guard, evs...)
	return err
}

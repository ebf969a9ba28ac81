package app

import (
	"context"
	"errors"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// ControlPlaneStore adapts the store to what the control-plane link keeps in the database
// (controlplane.Store). The link cannot import the credential store: this adapter hands it
// outbox rows, its own state and connection counts, and nothing else.
func ControlPlaneStore(s *store.Store) controlplane.Store { return controlPlaneStore{s} }

type controlPlaneStore struct{ *store.Store }

func (s controlPlaneStore) OutboxBatch(ctx context.Context, limit int) ([]controlplane.OutboxEntry, error) {
	rows, err := s.Store.OutboxBatch(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]controlplane.OutboxEntry, len(rows))
	for i, r := range rows {
		out[i] = controlplane.OutboxEntry{ID: r.ID, Payload: r.Payload, Attempts: r.Attempts}
	}
	return out, nil
}

// DeploymentID is the deployment's id, created here when App.Migrate has not run yet.
func (s controlPlaneStore) DeploymentID(ctx context.Context) (string, error) {
	return s.Store.EnsureDeploymentID(ctx, ids.New(ids.Deployment))
}

func (s controlPlaneStore) ControlPlaneState(ctx context.Context, name string) (string, error) {
	v, err := s.Store.ControlPlaneState(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return "", controlplane.ErrNoState
	}
	return v, err
}

// ConnectionCounts reports statuses as the API shows them (store.PublicStatus).
func (s controlPlaneStore) ConnectionCounts(ctx context.Context) ([]controlplane.ConnectionCount, error) {
	rows, err := s.Store.ConnectionCounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]controlplane.ConnectionCount, len(rows))
	for i, r := range rows {
		out[i] = controlplane.ConnectionCount{WorkspaceID: r.WorkspaceID, Provider: r.Provider,
			Status: controlplane.Status(store.PublicStatus(r.Status)), N: r.N}
	}
	return out, nil
}

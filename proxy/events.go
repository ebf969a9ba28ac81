package proxy

import (
	"context"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// EventSink takes the metadata events the control plane may see (controlplane.Event:
// ids, provider keys, statuses, error codes). Emit must not block: handlers call it after
// a change has committed, and its failure never fails the request. *controlplane.Client
// satisfies it.
type EventSink interface {
	Emit(ctx context.Context, e controlplane.Event)
}

var _ EventSink = (*controlplane.Client)(nil)

// noEvents is the sink of a standalone deployment.
type noEvents struct{}

func (noEvents) Emit(context.Context, controlplane.Event) {}

// emitConnection reports a committed change of a connection: its id, workspace, provider
// key and API status, and for failures an error code from the fixed set.
func emitConnection(ctx context.Context, events EventSink, typ controlplane.EventType, c store.Connection, code controlplane.ErrorCode) {
	events.Emit(ctx, controlplane.Event{Type: typ, WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Provider: c.Provider,
		Status: controlplane.Status(viewOf(c).Status), ErrorCode: code})
}

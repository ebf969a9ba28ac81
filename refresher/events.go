package refresher

import (
	"context"

	"github.com/authpipe/authpipe-proxy/vault/store"
)

// This file reports the refresher's committed changes as metadata events: Refreshed after
// a committed refresh, RefreshFailed with the failure's code after a recorded failure, and
// StatusChanged when a connection becomes needs_reauth or error (or an errored API-key
// connection passes its health check again). Events carry ids, the provider key, the
// status and the code: never a token, a provider's text or an HTTP body. internal/app
// adapts them to the control plane's events and error codes.

// EventType names a committed change of a connection.
type EventType string

// The refresher's event types (the control plane's names).
const (
	EventRefreshed     EventType = "connection.refreshed"
	EventFailed        EventType = "connection.refresh_failed"
	EventStatusChanged EventType = "connection.status_changed"
)

// Event is one committed change of a connection. Status is the API's status (revoke_pending
// reads disconnected); Code is the failure's code (Failure.Code), "" when none.
type Event struct {
	Type                                EventType
	WorkspaceID, ConnectionID, Provider string
	Status                              string
	Code                                string
}

// EventSink receives the refresher's events. Emit must not block; it never fails a refresh.
type EventSink interface {
	Emit(ctx context.Context, e Event)
}

// WithEvents sends the refresher's events to e (the control-plane link). Without it a
// standalone deployment reports nothing.
func WithEvents(e EventSink) Option { return func(r *Refresher) { r.events = e } }

// emit reports a committed change of c. It does nothing without a sink.
func (r *Refresher) emit(ctx context.Context, typ EventType, c store.Connection, code string) {
	if r.events == nil {
		return
	}
	status := store.PublicStatus(c.Status)
	r.events.Emit(ctx, Event{Type: typ, WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Provider: c.Provider,
		Status: status, Code: code})
}

package refresher

import (
	"context"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// This file reports the refresher's committed changes to the control plane as metadata
// events (docs/control-plane.md): connection.refreshed after a committed refresh,
// connection.refresh_failed with an error code from controlplane's fixed set after a
// recorded failure, and connection.status_changed when a connection becomes
// needs_reauth or error (or an errored API-key connection passes its health check
// again). Events carry ids, the provider key, the status and the code: never a token, a
// provider's text or an HTTP body. Emit never blocks; a standalone deployment has no sink.

// WithEvents sends the refresher's metadata events to e (the control-plane link).
func WithEvents(e controlplane.Emitter) Option { return func(r *Refresher) { r.events = e } }

// SetEvents is WithEvents after New. Call it before Start and before the first refresh:
// it is not safe to call concurrently with them.
func (r *Refresher) SetEvents(e controlplane.Emitter) { r.events = e }

// emit reports a committed change of c. It does nothing without a sink.
func (r *Refresher) emit(ctx context.Context, typ controlplane.EventType, c store.Connection, code string) {
	if r.events == nil {
		return
	}
	status := c.Status
	if status == store.StatusRevokePending {
		status = store.StatusDisconnected // the API's statuses; revoke_pending is internal
	}
	e := controlplane.Event{Type: typ, WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Provider: c.Provider,
		Status: controlplane.Status(status)}
	if code != "" {
		e.ErrorCode = errorCode(code)
	}
	r.events.Emit(ctx, e)
}

// errorCode maps a refresh failure's code (Failure.Code: an RFC 6749 code, or one of this
// package's own) onto the control plane's fixed set. Unknown codes become "unknown", so
// nothing but the set ever crosses.
func errorCode(code string) controlplane.ErrorCode {
	switch code {
	case "invalid_grant":
		return controlplane.ErrorInvalidGrant
	case "invalid_client", "unauthorized_client":
		return controlplane.ErrorInvalidClient
	case "rate_limited":
		return controlplane.ErrorRateLimited
	case "provider_unavailable", "provider_error", "invalid_token_response", "invalid_request", "invalid_scope",
		"unsupported_grant_type", "unsupported_response_type", "server_error", "temporarily_unavailable", "access_denied",
		"invalid_token", "unsupported_token_type":
		return controlplane.ErrorProviderError
	case "network_error", "timeout", "unsafe_url":
		return controlplane.ErrorNetwork
	case "kms_unavailable":
		return controlplane.ErrorKMSUnavailable
	}
	return controlplane.ErrorUnknown
}

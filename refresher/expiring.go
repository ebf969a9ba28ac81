package refresher

import (
	"context"
	"log/slog"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// A refresh token with an end (refresh_token_expires_at: the provider's
// refresh_token_expires_in or the like, an import's value) may not be renewed by
// refreshing: the end user must reconnect before it. Each sweep finds active connections
// whose refresh token ends within Config.ExpiringLead and appends a connection.expiring
// audit event for each, once per connection per expiry (store.NotifyExpiring); the
// webhook dispatcher sends it to the application (MapEvent). Keep-alive refreshes for an
// idle TTL need nothing here: the refresh deadline already comes before the idle end
// (oauthflow.Provider.RefreshDue).

// expiringBatch bounds one sweep's notifications; the next sweep takes the rest.
const expiringBatch = 500

// notifyExpiring appends the connection.expiring events that are due now.
func (r *Refresher) notifyExpiring(ctx context.Context) {
	now := r.now()
	marked, err := r.store.NotifyExpiring(ctx, now.Add(r.cfg.ExpiringLead), expiringBatch, func(c store.Connection) audit.Event {
		return audit.Event{WorkspaceID: c.WorkspaceID, At: now, Type: audit.ConnectionExpiring, Actor: actor, ConnectionID: c.ID,
			Outcome: audit.Success, Data: eventData("provider", c.Provider,
				"refresh_token_expires_at", c.RefreshTokenExpiresAt.UTC().Format(time.RFC3339))}
	})
	if err != nil && ctx.Err() == nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "expiring refresh tokens", slog.Any("err", err))
	}
	if len(marked) > 0 {
		r.log.LogAttrs(ctx, slog.LevelInfo, "refresh tokens expiring", slog.Int("notified", len(marked)))
	}
}

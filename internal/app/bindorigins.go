package app

import (
	"context"
	"fmt"
	"time"
)

// BindResult is what a run of the origin-binding migration did.
type BindResult struct {
	SecretsBound, SecretsSkipped         int
	CredentialsBound, CredentialsSkipped int
}

// BindOrigins binds the client secrets, then the credentials, stored before origin binding
// to their provider's origins as configured now (providers.Service.BindLegacySecrets,
// refresher.Refresher.BindLegacy). Serve runs it in the background once start-up work is
// done; `authpipe-proxy bind-origins` runs it now. It is resumable (a cursor in the
// database) and safe to run again or beside the server; until a row is bound, every call
// that would carry it is refused (409 origin_changed), never sent.
func (a *App) BindOrigins(ctx context.Context) (BindResult, error) {
	var r BindResult
	var err error
	if r.SecretsBound, r.SecretsSkipped, err = a.Providers.BindLegacySecrets(ctx, a.Store, 0); err != nil {
		return r, fmt.Errorf("bind client secrets: %w", err)
	}
	st, err := a.Refresher.BindLegacy(ctx, a.Store, 0)
	r.CredentialsBound, r.CredentialsSkipped = st.Bound, st.Skipped
	if err != nil {
		return r, fmt.Errorf("bind credentials: %w", err)
	}
	if r.SecretsBound+r.SecretsSkipped+r.CredentialsBound+r.CredentialsSkipped > 0 {
		a.Log.InfoContext(ctx, "origin binding migration", "secrets_bound", r.SecretsBound, "secrets_skipped", r.SecretsSkipped,
			"credentials_bound", r.CredentialsBound, "credentials_skipped", r.CredentialsSkipped)
	}
	return r, nil
}

// bindOriginsLoop runs BindOrigins until it completes (a KMS or database outage retries).
func (a *App) bindOriginsLoop(ctx context.Context) {
	for delay := time.Second; ; delay = min(delay*2, time.Minute) {
		_, err := a.BindOrigins(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		a.Log.WarnContext(ctx, "origin binding migration stopped; retrying", "err", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

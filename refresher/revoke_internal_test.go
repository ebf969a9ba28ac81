package refresher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

func TestRevokeBackoff(t *testing.T) {
	for attempts, base := range map[int]time.Duration{0: 30 * time.Second, 1: time.Minute, 3: 4 * time.Minute,
		7: time.Hour, 20: time.Hour} {
		for range 20 {
			d := revokeBackoff(attempts)
			require.GreaterOrEqual(t, d, base, "attempts %d", attempts)
			require.LessOrEqual(t, d, base+base/5+1, "attempts %d", attempts)
		}
	}
}

func TestClassifyRevoke(t *testing.T) {
	v := &Revocations{log: slog.New(slog.DiscardHandler)}
	cc := store.ConnectionCredential{Connection: store.Connection{ID: "conn_x"}}
	for _, tc := range []struct {
		name    string
		err     error
		outcome store.RevokeOutcome
		code    string
	}{
		{"no endpoint", oauthflow.ErrRevocationUnsupported, store.NotRevocable, codeRevocationUnsupported},
		{"5xx", &oauthflow.ProviderError{Op: "revoke", Code: "server_error", Status: 503}, store.RetryLater, codeProviderUnavailable},
		{"429", &oauthflow.ProviderError{Op: "revoke", Code: "provider_error", Status: http.StatusTooManyRequests}, store.RetryLater, codeProviderUnavailable},
		{"permanent refusal", &oauthflow.ProviderError{Op: "revoke", Code: "unsupported_token_type", Status: 400}, store.NotRevocable, "unsupported_token_type"},
		{"unsafe URL", fmt.Errorf("dial: %w", outbound.ErrUnsafeURL), store.NotRevocable, "unsafe_url"},
		{"KMS down", fmt.Errorf("open: %w", vault.ErrKMSUnavailable), store.RetryLater, problem.ErrKMSUnavailable.Code},
		{"a problem keeps its code", problem.ErrDatabaseUnavailable, store.RetryLater, problem.ErrDatabaseUnavailable.Code},
		{"network", errors.New("connection reset"), store.RetryLater, codeProviderUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			att := v.classify(context.Background(), cc, tc.err)
			require.Equal(t, tc.outcome, att.outcome)
			require.Equal(t, tc.code, att.code)
		})
	}
}

package refresher_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// The decision is the same whoever asks and whether or not a Refresher is wired: a token
// outside the lead window is served from the row without a provider call; an expired one
// is never served when it cannot be refreshed; refused connections answer their sentinel.
func TestCredentialDecision(t *testing.T) {
	e := newEnv(t, store.SQLite)
	fp := newFakeProvider(t)
	e.setProvider(oauthflow.Provider{TokenURL: fp.URL + "/token"}, oauthflow.ClientCredentials{ClientID: "c"})
	ctx := context.Background()
	r := e.refresher(refresher.Config{})
	fp.mode.Store("invalid_grant")
	reauth := e.addConn("reauth", "rt", time.Now().Add(5*time.Minute))
	_, err := e.tokens(r).Credential(ctx, reauth.WorkspaceID, reauth.ID, 0)
	require.ErrorIs(t, err, refresher.ErrNeedsReauth)

	fp.mode.Store("500") // from now on every refresh fails transiently
	valid := e.addConn("valid", "rt", time.Now().Add(time.Hour))
	soon := e.addConn("soon", "rt", time.Now().Add(5*time.Minute)) // inside the lead window
	expired := e.addConn("expired", "rt", time.Now().Add(-time.Second))

	for _, tc := range []struct {
		name string
		r    *refresher.Refresher
	}{{"refresher wired", r}, {"no refresher", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			tokens := e.tokens(tc.r)
			before := fp.calls.Load()
			cred, err := tokens.Credential(ctx, valid.WorkspaceID, valid.ID, 0)
			require.NoError(t, err)
			require.Equal(t, "valid", cred.Secret.Reveal())
			require.Equal(t, oauthflow.AuthModeOAuth2, cred.Kind)
			require.Equal(t, "Bearer", cred.TokenType)
			require.Equal(t, []string{"read"}, cred.Scopes)
			require.Equal(t, before, fp.calls.Load(), "served from the row")

			cred, err = tokens.Credential(ctx, soon.WorkspaceID, soon.ID, 0)
			require.NoError(t, err, "the provider is down: the current token is served while valid")
			require.Equal(t, "soon", cred.Secret.Reveal())

			cred, err = tokens.Credential(ctx, expired.WorkspaceID, expired.ID, 0)
			require.ErrorIs(t, err, refresher.ErrUnavailable, "an expired token is never served")
			require.True(t, cred.Secret.IsZero())
			require.Equal(t, oauthflow.AuthModeOAuth2, cred.Kind)

			_, err = tokens.Credential(ctx, reauth.WorkspaceID, reauth.ID, 0)
			require.ErrorIs(t, err, refresher.ErrNeedsReauth)
			_, err = tokens.Credential(ctx, store.DefaultWorkspaceID, "conn_missing", 0)
			require.ErrorIs(t, err, store.ErrNotFound)
		})
	}
	_, err = e.tokens(nil).ForceRefresh(ctx, valid.WorkspaceID, valid.ID)
	require.ErrorIs(t, err, refresher.ErrUnavailable, "no Refresher: nothing refreshes")
}

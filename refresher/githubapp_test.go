package refresher_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/oauthflow/githubapptest"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// gitHubAppEnv is env with a github_app provider at a githubapptest server, the app's key
// as the provider's client secret (bound to the token origin), and one installation
// connection holding a token minted there.
func gitHubAppEnv(t *testing.T, dialect string) (*env, *githubapptest.Server, store.Connection, string) {
	t.Helper()
	e := newEnv(t, dialect)
	gh := githubapptest.New(t, githubapptest.Options{})
	p := oauthflow.Provider{Name: "gh", AuthMode: oauthflow.AuthModeGitHubApp,
		TokenURL: gh.URL + "/app/installations/{installation_id}/access_tokens", APIBaseURL: gh.URL,
		ConnectionConfig: []oauthflow.ConfigParam{{Name: "installation_id", Pattern: "^[0-9]{1,20}$"}}}
	client := oauthflow.ClientCredentials{ClientID: gh.AppID(), ClientSecret: vault.NewSecret(gh.PrivateKeyPEM()),
		SecretOrigins: p.ClientSecretOrigins()}
	e.setProvider(p, client)
	filled, err := p.ForConnection(map[string]string{"installation_id": "1001"}, nil)
	require.NoError(t, err)
	tok, err := oauthflow.MintGitHubApp(context.Background(), e.hc, filled, client, nil, time.Now())
	require.NoError(t, err)

	ctx := context.Background()
	now := time.Now().UTC()
	c := store.Connection{ID: ids.New(ids.Connection), WorkspaceID: store.DefaultWorkspaceID, Provider: "gh", EndUserID: "u",
		AuthMode: string(oauthflow.AuthModeGitHubApp), Status: store.StatusActive, Scopes: store.Strings(tok.Scopes),
		ExpiresAt: tok.ExpiresAt, NextRefreshAt: tok.ExpiresAt, ConnectionConfig: `{"installation_id":"1001"}`,
		CredentialPrefix: tok.AccessToken.Prefix(8), Version: 1, CreatedAt: now, UpdatedAt: now}
	ao := filled.AccessTokenOrigins()
	cred := store.Credential{ConnectionID: c.ID, WorkspaceID: c.WorkspaceID, TokenType: "Bearer", UpdatedAt: now,
		AccessOrigins: store.StoredOrigins(ao)}
	cred.AccessToken, err = e.creds.Seal(ctx, store.AccessTokenBinding(c, ao), tok.AccessToken)
	require.NoError(t, err)
	require.NoError(t, e.store.CreateConnection(ctx, c, cred))
	return e, gh, c, tok.AccessToken.Reveal()
}

func narrowedEvents(t *testing.T, e *env) []audit.Event {
	t.Helper()
	evs, err := e.store.ListAudit(context.Background(), store.DefaultWorkspaceID, "", 1000)
	require.NoError(t, err)
	var out []audit.Event
	for _, ev := range evs {
		if ev.Type == audit.TokenNarrowed {
			out = append(out, ev)
		}
	}
	return out
}

// TestNarrowedGitHubAppToken: a narrowed read mints a token limited as asked (the
// server's record proves it), not stored (the connection's cached token is unchanged),
// each one its own token.narrowed event naming what it was limited to; refusals answer
// their problems and leave the connection as it was.
func TestNarrowedGitHubAppToken(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			e, gh, c, cached := gitHubAppEnv(t, dialect)
			ctx := context.Background()
			tokens := e.tokens(e.refresher(refresher.Config{}))
			n, err := oauthflow.ParseNarrowing("beta", true, "contents:read,metadata:read", true)
			require.NoError(t, err)

			cred, err := tokens.Narrowed(ctx, c.WorkspaceID, c.ID, "apk_test", n)
			require.NoError(t, err)
			require.Equal(t, oauthflow.AuthModeGitHubApp, cred.Kind)
			require.NotEqual(t, cached, cred.Secret.Reveal())
			require.Equal(t, []string{"contents:read", "metadata:read", "repository:beta"}, cred.Scopes)
			require.WithinDuration(t, time.Now().Add(time.Hour), *cred.ExpiresAt, 5*time.Second)
			rec, ok := gh.Token(cred.Secret.Reveal())
			require.True(t, ok)
			require.Equal(t, []string{"beta"}, rec.Repositories)
			require.Equal(t, map[string]string{"contents": "read", "metadata": "read"}, rec.Permissions)

			// Not cached, not stored: a second read mints again; the row still holds the
			// whole installation's token.
			again, err := tokens.Narrowed(ctx, c.WorkspaceID, c.ID, "apk_test", n)
			require.NoError(t, err)
			require.NotEqual(t, cred.Secret.Reveal(), again.Secret.Reveal())
			require.Equal(t, cached, e.open(e.row(c.ID), vault.AccessTokenBinding))
			plain, err := tokens.Credential(ctx, c.WorkspaceID, c.ID, 0)
			require.NoError(t, err)
			require.Equal(t, cached, plain.Secret.Reveal())
			require.Equal(t, oauthflow.AuthModeGitHubApp, plain.Kind)

			evs := narrowedEvents(t, e)
			require.Len(t, evs, 2)
			var data map[string]string
			require.NoError(t, json.Unmarshal([]byte(evs[0].Data), &data))
			require.Equal(t, "apk_test", evs[0].Actor)
			require.Equal(t, c.ID, evs[0].ConnectionID)
			require.Equal(t, audit.Success, evs[0].Outcome)
			require.Equal(t, "beta", data["repositories"])
			require.Equal(t, "contents:read,metadata:read", data["permissions"])
			require.Equal(t, "contents:read,metadata:read,repository:beta", data["granted"])
			require.NotContains(t, evs[0].Data, cred.Secret.Reveal())

			// More than the installation has: 422 narrowing_refused, audited as a failure.
			_, err = tokens.Narrowed(ctx, c.WorkspaceID, c.ID, "apk_test", &oauthflow.Narrowing{Repositories: []string{"delta"}})
			require.ErrorIs(t, err, refresher.ErrNarrowingRefused)
			require.Equal(t, 422, problem.From(err).Status)
			evs = narrowedEvents(t, e)
			require.Len(t, evs, 3)
			require.Equal(t, audit.Failure, evs[2].Outcome)
			require.Equal(t, "narrowing_refused", evs[2].ErrorCode)

			// Not a github_app connection: 400 invalid_request, nothing minted.
			oauth := e.addConn("at", "rt", time.Now().Add(time.Hour))
			before := gh.Mints() + gh.Refusals()
			_, err = tokens.Narrowed(ctx, oauth.WorkspaceID, oauth.ID, "apk_test", n)
			require.ErrorIs(t, err, refresher.ErrNotNarrowable)
			require.Equal(t, "invalid_request", problem.From(err).Code)
			require.Equal(t, before, gh.Mints()+gh.Refusals())

			// The app's key rejected (401): needs_reauth for the caller; the connection's
			// status is the cached mint's business.
			gh.RotateKey(t)
			_, err = tokens.Narrowed(ctx, c.WorkspaceID, c.ID, "apk_test", n)
			require.ErrorIs(t, err, refresher.ErrNeedsReauth)
			require.Equal(t, store.StatusActive, e.row(c.ID).Status)
		})
	}
}

// TestNarrowedOriginChecked: the app key is bound to the token origin it was stored for;
// a provider re-pointed elsewhere gets no narrowed mint (origin_changed, nothing sent).
func TestNarrowedOriginChecked(t *testing.T) {
	e, gh, c, _ := gitHubAppEnv(t, store.SQLite)
	other := githubapptest.New(t, githubapptest.Options{})
	p := *e.provs.p.Load()
	cc := e.provs.cc
	p.TokenURL = other.URL + "/app/installations/{installation_id}/access_tokens"
	e.setProvider(p, cc) // the key keeps its binding to gh's origin
	n := &oauthflow.Narrowing{Repositories: []string{"alpha"}}
	_, err := e.tokens(e.refresher(refresher.Config{})).Narrowed(context.Background(), c.WorkspaceID, c.ID, "apk_test", n)
	require.ErrorIs(t, err, vault.ErrOriginNotBound)
	require.Zero(t, other.Mints()+other.Refusals())
	require.Zero(t, gh.Mints()-1, "only the setup's mint")
}

// TestDisconnectRevokesGitHubAppToken: disconnecting an installation connection, or
// erasing its end user, revokes its cached token at GitHub (DELETE /installation/token with
// the token itself).
func TestDisconnectRevokesGitHubAppToken(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			for _, how := range []string{"disconnect", "erase"} {
				e, gh, c, cached := gitHubAppEnv(t, dialect)
				v, err := refresher.NewRevocations(e.refresher(refresher.Config{}), e.store, time.Hour)
				require.NoError(t, err)
				if how == "disconnect" {
					conn, changed, err := v.Disconnect(context.Background(), c.WorkspaceID, c.ID, "apk_test")
					require.NoError(t, err)
					require.True(t, changed)
					require.Equal(t, store.StatusDisconnected, conn.Status)
				} else {
					n, _, err := v.EraseEndUser(context.Background(), c.WorkspaceID, c.EndUserID, "apk_test")
					require.NoError(t, err)
					require.EqualValues(t, 1, n)
				}
				rec, ok := gh.Token(cached)
				require.True(t, ok)
				require.True(t, rec.Revoked, how)
				require.EqualValues(t, 1, gh.Revocations(), how)
			}
		})
	}
}

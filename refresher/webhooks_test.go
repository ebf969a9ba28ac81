package refresher_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/webhooksig"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// A needs_reauth and a created connection reach the workspace's endpoint as signed JSON
// with no credential in it; a failed delivery is retried.
func TestWebhooksAreSignedRetriedAndCarryNoCredential(t *testing.T) {
	e := newEnv(t, store.SQLite)
	ctx := context.Background()
	fp := newFakeProvider(t)
	fp.mode.Store("invalid_grant")
	e.setProvider(oauthflow.Provider{TokenURL: fp.URL + "/token"}, oauthflow.ClientCredentials{ClientID: "c"})

	secret, err := webhooksig.NewSecret()
	require.NoError(t, err)
	var mu sync.Mutex
	var got []refresher.WebhookPayload
	var hits atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError) // the first attempt fails
			return
		}
		if webhooksig.Verify(secret.Bytes(), r.Header.Get(webhooksig.SignatureHeader), body, time.Now(), time.Minute) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		require.NotContains(t, string(body), "SECRET-ACCESS")
		require.NotContains(t, string(body), "SECRET-REFRESH")
		var p refresher.WebhookPayload
		require.NoError(t, json.Unmarshal(body, &p))
		require.Equal(t, p.Type, r.Header.Get("Authpipe-Event-Type"))
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	sealed, err := e.creds.Seal(ctx, vault.WebhookSecretBinding(store.DefaultWorkspaceID), secret)
	require.NoError(t, err)
	require.NoError(t, e.store.PutWebhookEndpoint(ctx, store.WebhookEndpoint{WorkspaceID: store.DefaultWorkspaceID, URL: recv.URL,
		Secret: sealed, CreatedAt: time.Now(), UpdatedAt: time.Now()}))

	c := e.addConn("SECRET-ACCESS", "SECRET-REFRESH", time.Now().Add(time.Minute))
	r := e.refresher(refresher.Config{})
	_, err = e.tokens(r).Credential(ctx, c.WorkspaceID, c.ID, 0)
	require.ErrorIs(t, err, refresher.ErrNeedsReauth)

	w, err := refresher.NewWebhooks(refresher.WebhookConfig{BackoffBase: time.Millisecond}, e.store, e.creds, e.hc, nil, nil)
	require.NoError(t, err)
	var outcomes []string
	w.ObserveDeliveries(func(o string) { mu.Lock(); outcomes = append(outcomes, o); mu.Unlock() })
	n, err := w.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "the first attempt failed")
	time.Sleep(5 * time.Millisecond)
	n, err = w.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "retried")
	n, err = w.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "delivered once")

	require.Len(t, got, 1)
	require.Equal(t, []string{"retry", "delivered"}, outcomes)
	require.Equal(t, refresher.EventNeedsReauth, got[0].Type)
	require.Equal(t, c.ID, got[0].Data.ConnectionID)
	require.Equal(t, "invalid_grant", got[0].Data.ErrorCode)
	require.True(t, strings.HasPrefix(got[0].ID, "evt_"))
	ds, err := e.store.WebhookDeliveries(ctx, store.DefaultWorkspaceID, 10)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, 2, ds[0].Attempts)
	require.NotNil(t, ds[0].DeliveredAt)
}

// API-key connections whose provider has a health check URL are checked by the sweep: a
// refused key marks the connection error, an accepted one makes it active again.
func TestHealthChecksMarkErrorAndRecover(t *testing.T) {
	e := newEnv(t, store.SQLite)
	ctx := context.Background()
	var accept atomic.Bool
	var calls atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if accept.Load() && r.Header.Get("X-Api-Key") == "key-SECRET" {
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(hs.Close)
	e.setProvider(oauthflow.Provider{AuthMode: oauthflow.AuthModeAPIKey, HealthCheckURL: hs.URL + "/me",
		APIKeyAuth: oauthflow.APIKeyHeader, APIKeyHeader: "X-Api-Key", APIKeyFormat: "{key}"}, oauthflow.ClientCredentials{})

	c := e.addAPIKeyConn("key-SECRET")

	r := e.refresher(refresher.Config{HealthInterval: time.Millisecond, Lead: time.Minute})
	st, err := r.Sweep(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Checked)
	require.Equal(t, store.StatusError, e.row(c.ID).Status)

	accept.Store(true)
	time.Sleep(2 * time.Millisecond)
	_, err = r.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, store.StatusActive, e.row(c.ID).Status)
	require.EqualValues(t, 2, calls.Load())
}

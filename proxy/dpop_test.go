package proxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/dpop/dpoptest"
	"github.com/authpipe/authpipe-proxy/proxy"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// replica is a second proxy process on the harness's database: its own App (store, pool,
// keyrings, edge state) built from the same configuration.
func replica(t *testing.T, h *harness) *httptest.Server {
	t.Helper()
	a, err := app.New(context.Background(), h.app.Config, app.WithLogOutput(&syncBuffer{}))
	require.NoError(t, err)
	a.Server.SetReady(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Audit.Run(ctx); close(done) }()
	srv := httptest.NewServer(a.Server.Handler())
	t.Cleanup(func() {
		srv.Close()
		a.Audit.Stop(context.Background())
		cancel()
		<-done
		a.Close()
	})
	return srv
}

// dpopKey creates an API key bound to a fresh DPoP key and returns both.
func dpopKey(t *testing.T, h *harness) (string, dpoptest.Key) {
	t.Helper()
	k := dpoptest.NewKey(t, jose.ES256)
	created := h.expect(h.do("POST", "/v1/api-keys", bootstrapKey, map[string]any{"name": "d", "scopes": []string{"tokens:read"},
		"dpop_jkt": k.JKT}), 201, "")
	return created.Body["key"].(string), k
}

func dpopCall(t *testing.T, base, key, proof string) (*http.Response, []byte) {
	t.Helper()
	return send(t, base, "GET", "/v1/connections", http.Header{"Authorization": {"DPoP " + key}, "DPoP": {proof}}, nil)
}

// A proof accepted by one replica is a replay on every other: the jtis live in the
// database both share.
func TestDPoPReplayRefusedAcrossReplicas(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			h := newHarness(t, d, nil)
			second := replica(t, h)
			key, k := dpopKey(t, h)
			const htu = "http://127.0.0.1:8080/v1/connections"

			p := k.Proof(t, claimsNow("GET", htu, key), nil)
			res, body := dpopCall(t, h.srv.URL, key, p)
			require.Equal(t, 200, res.StatusCode, "body: %s", body)
			res, body = dpopCall(t, second.URL, key, p)
			require.Equal(t, 401, res.StatusCode, "replayed on the second replica; body: %s", body)
			require.Contains(t, string(body), `"code":"invalid_dpop_proof"`)
			require.Contains(t, string(body), "jti was used before")

			// The other way round, and fresh proofs pass on both.
			p = k.Proof(t, claimsNow("GET", htu, key), nil)
			res, _ = dpopCall(t, second.URL, key, p)
			require.Equal(t, 200, res.StatusCode)
			res, _ = dpopCall(t, h.srv.URL, key, p)
			require.Equal(t, 401, res.StatusCode)
			res, _ = dpopCall(t, h.srv.URL, key, k.Proof(t, claimsNow("GET", htu, key), nil))
			require.Equal(t, 200, res.StatusCode)
		})
	}
}

// One DPoP key holder sending proofs beyond its quota is refused with 429; every other
// key's proofs still pass.
func TestDPoPFloodDoesNotBlockOtherKeys(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	srv := edgeServer(t, h, proxy.EdgeConfig{DPoPPerKey: 2})
	flooder, fk := dpopKey(t, h)
	other, ok := dpopKey(t, h)
	const htu = "http://127.0.0.1:8080/v1/connections"
	for range 2 {
		res, body := dpopCall(t, srv.URL, flooder, fk.Proof(t, claimsNow("GET", htu, flooder), nil))
		require.Equal(t, 200, res.StatusCode, "body: %s", body)
	}
	res, body := dpopCall(t, srv.URL, flooder, fk.Proof(t, claimsNow("GET", htu, flooder), nil))
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode, "body: %s", body)
	require.Contains(t, string(body), `"code":"rate_limited"`)
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	require.Empty(t, res.Header.Get("WWW-Authenticate"), "not a bad proof")
	res, body = dpopCall(t, srv.URL, other, ok.Proof(t, claimsNow("GET", htu, other), nil))
	require.Equal(t, 200, res.StatusCode, "body: %s", body)
}

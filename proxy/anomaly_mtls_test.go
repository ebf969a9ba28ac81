package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
	"github.com/authpipe/authpipe-proxy/proxy"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// A key used over mTLS: after its warm-up, a read with a client certificate the key never
// used (another certificate naming the key) is one new_client_certificate, once; the same
// certificate again is known, and the address (unchanged) is no finding.
func TestNewClientCertificateFiresOnce(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) { newClientCertificate(t, dialect) })
	}
}

func newClientCertificate(t *testing.T, dialect string) {
	dir := t.TempDir()
	serverCA, clientCA := tlstest.NewCA(t, "server CA"), tlstest.NewCA(t, "client CA")
	certFile, keyFile := serverCA.Server(t).WriteFiles(t, dir, "tls")
	vars := map[string]string{
		config.EnvListenAddr:             "127.0.0.1:0",
		config.EnvDatabaseURL:            storetest.URL(t, dialect),
		config.EnvKEKURI:                 "local://" + filepath.Join(dir, "kek.key"),
		config.EnvClientSecretKEKURI:     "local://" + filepath.Join(dir, "cs-kek.key"),
		config.EnvBootstrapAPIKey:        bootstrapKey,
		config.EnvTLSCertFile:            certFile,
		config.EnvTLSKeyFile:             keyFile,
		config.EnvTLSClientCAFile:        clientCA.WriteFile(t, dir, "client-ca"),
		"AUTHPIPE_ANOMALY_WINDOW":        "1s",
		"AUTHPIPE_ANOMALY_CLIENT_WARMUP": "1s",
	}
	withListenURL(t, vars)
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	cfg.ShutdownDelay = 0
	a, err := app.New(context.Background(), cfg, app.WithLogOutput(io.Discard))
	require.NoError(t, err)
	t.Cleanup(a.Close)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, func(addr string) { addrc <- addr }) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	base := "https://" + <-addrc

	client := func(cert *tlstest.Leaf) *http.Client {
		conf := &tls.Config{RootCAs: serverCA.Pool()}
		if cert != nil {
			conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
		}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}}
	}
	do := func(c *http.Client, method, path string, body any) (int, map[string]any) {
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			require.NoError(t, err)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, base+path, rd)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+bootstrapKey)
		req.Header.Set("Content-Type", "application/json")
		res, err := c.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	require.Eventually(t, func() bool {
		res, err := client(nil).Get(base + "/readyz")
		if err != nil {
			return false
		}
		_ = res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond)
	k, err := a.Admin.Authenticate(ctx, vault.NewSecret(bootstrapKey))
	require.NoError(t, err)
	first := client(clientCA.Client(t, "app-1", proxy.ClientCertKeyURIPrefix+k.KeyID))
	renewed := client(clientCA.Client(t, "app-1-new", proxy.ClientCertKeyURIPrefix+k.KeyID))

	code, c := do(first, "POST", "/v1/connections", map[string]any{"provider": "stripe", "end_user_id": "u",
		"api_key": "sk_test_mtls000000000000000"})
	require.Equal(t, 201, code, "%v", c)
	tokenPath := "/v1/connections/" + c["id"].(string) + "/token"
	anomalies := func() []audit.Event {
		evs, err := a.Store.ListAudit(context.Background(), store.DefaultWorkspaceID, "", 10000)
		require.NoError(t, err)
		var out []audit.Event
		for _, e := range evs {
			if e.Type == audit.SecurityAnomaly {
				out = append(out, e)
			}
		}
		return out
	}
	// The warm-up learns the address and the first certificate.
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		code, _ := do(first, "GET", tokenPath, nil)
		require.Equal(t, 200, code)
		time.Sleep(200 * time.Millisecond)
	}
	require.Empty(t, anomalies())

	for range 3 {
		code, _ := do(renewed, "GET", tokenPath, nil)
		require.Equal(t, 200, code)
	}
	require.Eventually(t, func() bool { return len(anomalies()) > 0 }, 10*time.Second, 50*time.Millisecond)
	do(renewed, "GET", tokenPath, nil)
	do(first, "GET", tokenPath, nil)
	time.Sleep(2500 * time.Millisecond)
	evs := anomalies()
	require.Len(t, evs, 1, "one new certificate, one finding; the address is known")
	require.Equal(t, audit.AnomalyNewClientCert, evs[0].ErrorCode)
	require.JSONEq(t, `{"kind":"new_client_certificate","api_key_id":"`+k.KeyID+`","count":"1","baseline":"0"}`, evs[0].Data)
	n, err := a.Store.APIKeyClientCount(context.Background(), store.DefaultWorkspaceID, k.KeyID, audit.ClientCertificate)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
}

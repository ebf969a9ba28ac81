package proxy_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
	"github.com/authpipe/authpipe-proxy/proxy"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

func TestClientCertKeyIDs(t *testing.T) {
	ca := tlstest.NewCA(t, "client CA")
	tests := []struct {
		name string
		uris []string
		want []string
	}{
		{"none", nil, nil},
		{"one key", []string{"authpipe:apikey:apk_1"}, []string{"apk_1"}},
		{"two keys and an unrelated SAN", []string{"spiffe://cluster/ns/app", "authpipe:apikey:apk_1", "authpipe:apikey:apk_2"}, []string{"apk_1", "apk_2"}},
		{"empty id", []string{"authpipe:apikey:"}, nil},
		{"other prefix", []string{"authpipe:workspace:ws_1"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, proxy.ClientCertKeyIDs(ca.Client(t, "app", tc.uris...).Cert))
		})
	}
}

// TestClientCertBinding runs the real server (app.Serve: TLS 1.3 listener with a client
// CA) and checks that an API key is honoured only together with a verified client
// certificate that names it.
func TestClientCertBinding(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, otherCA := tlstest.NewCA(t, "server CA"), tlstest.NewCA(t, "client CA"), tlstest.NewCA(t, "other CA")
	certFile, keyFile := serverCA.Server(t).WriteFiles(t, dir, "tls")
	vars := map[string]string{
		config.EnvListenAddr:         "127.0.0.1:0",
		config.EnvDatabaseURL:        storetest.URL(t, "sqlite"),
		config.EnvKEKURI:             "local://" + filepath.Join(dir, "kek.key"),
		config.EnvClientSecretKEKURI: "local://" + filepath.Join(dir, "cs-kek.key"),
		config.EnvBootstrapAPIKey:    bootstrapKey,
		config.EnvTLSCertFile:        certFile,
		config.EnvTLSKeyFile:         keyFile,
		config.EnvTLSClientCAFile:    clientCA.WriteFile(t, dir, "client-ca"),
	}
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	cfg.ShutdownDelay = 0 // no drain delay in tests
	logs := &syncBuffer{}
	a, err := app.New(context.Background(), cfg, app.WithLogOutput(logs))
	require.NoError(t, err)
	t.Cleanup(a.Close)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, func(addr string) { addrc <- addr }) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	base := "https://" + <-addrc

	client := func(maxVersion uint16, cert *tlstest.Leaf) *http.Client {
		conf := &tls.Config{RootCAs: serverCA.Pool(), MaxVersion: maxVersion}
		if cert != nil {
			conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
		}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}}
	}
	get := func(c *http.Client, path, key string) (int, error) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, res.Body)
		return res.StatusCode, nil
	}

	// Wait for start-up work (migrations, bootstrap key), then find the key's id.
	require.Eventually(t, func() bool {
		code, err := get(client(0, nil), "/readyz", "")
		return err == nil && code == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond)
	k, err := a.Admin.Authenticate(ctx, vault.NewSecret(bootstrapKey))
	require.NoError(t, err)

	bound := clientCA.Client(t, "app-1", proxy.ClientCertKeyURIPrefix+k.KeyID)
	otherKey := clientCA.Client(t, "app-2", proxy.ClientCertKeyURIPrefix+"apk_someoneelse")
	unbound := clientCA.Client(t, "app-3")
	foreign := otherCA.Client(t, "mallory", proxy.ClientCertKeyURIPrefix+k.KeyID)

	tests := []struct {
		name    string
		client  *http.Client
		path    string
		key     string
		want    int
		refused bool // at the TLS layer
	}{
		{"key and certificate naming it", client(0, bound), "/v1/api-keys", bootstrapKey, http.StatusOK, false},
		{"key without a certificate", client(0, nil), "/v1/api-keys", bootstrapKey, http.StatusUnauthorized, false},
		{"key with a certificate naming another key", client(0, otherKey), "/v1/api-keys", bootstrapKey, http.StatusUnauthorized, false},
		{"key with a certificate naming no key", client(0, unbound), "/v1/api-keys", bootstrapKey, http.StatusUnauthorized, false},
		{"certificate without the key", client(0, bound), "/v1/api-keys", "", http.StatusUnauthorized, false},
		{"certificate from another CA", client(0, foreign), "/v1/api-keys", bootstrapKey, 0, true},
		{"probe without a certificate", client(0, nil), "/healthz", "", http.StatusOK, false},
		{"TLS 1.2 client", client(tls.VersionTLS12, bound), "/healthz", "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, err := get(tc.client, tc.path, tc.key)
			if tc.refused {
				require.Error(t, err)
				var uerr *url.Error
				require.ErrorAs(t, err, &uerr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, code)
		})
	}
	require.NotContains(t, logs.String(), bootstrapKey)
	require.Contains(t, logs.String(), "client_certificates")
}

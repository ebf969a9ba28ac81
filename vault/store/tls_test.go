package store_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// pgTLSCluster is a throwaway PostgreSQL cluster that accepts only TLS 1.3 connections
// authenticated by a client certificate (pg_hba "hostssl ... cert").
type pgTLSCluster struct {
	port    int
	ca      *tlstest.CA
	rootPEM string // the CA certificate, for sslrootcert
	dir     string // readable by the test process: client certificates
}

// startPGTLS starts a throwaway cluster (storetest.StartCluster) with a server certificate
// for localhost that accepts only TLS 1.3 connections with a client certificate.
func startPGTLS(t *testing.T) *pgTLSCluster {
	t.Helper()
	ca := tlstest.NewCA(t, "authpipe test PostgreSQL CA")
	cl := storetest.StartCluster(t, storetest.ClusterConfig{
		Conf: `ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'root.crt'
ssl_min_protocol_version = 'TLSv1.3'`,
		// Only TLS connections with a client certificate whose CN is the user name.
		HBA: "hostssl all all 127.0.0.1/32 cert\n",
		Prepare: func(data string) {
			ca.Server(t).WriteFiles(t, data, "server")
			ca.WriteFile(t, data, "root")
		},
	})
	client := filepath.Join(cl.Base, "client")
	require.NoError(t, os.Mkdir(client, 0o700))
	return &pgTLSCluster{port: cl.Port, ca: ca, rootPEM: ca.WriteFile(t, client, "root"), dir: client}
}

// url builds a database URL for user postgres with the given TLS query parameters.
func (c *pgTLSCluster) url(params map[string]string) string {
	q := url.Values{}
	for k, v := range params {
		q.Set(k, v)
	}
	return fmt.Sprintf("postgres://postgres@localhost:%d/postgres?%s", c.port, q.Encode())
}

func TestPostgresVerifyFullWithClientCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	c := startPGTLS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	good, goodKey := c.ca.Client(t, "postgres").WriteFiles(t, c.dir, "postgres")
	withCert := c.url(map[string]string{"sslmode": "verify-full", "sslrootcert": c.rootPEM, "sslcert": good, "sslkey": goodKey})

	t.Run("verify-full with a client certificate migrates and round-trips", func(t *testing.T) {
		s, err := store.Open(ctx, withCert)
		require.NoError(t, err)
		defer s.Close()
		require.NoError(t, s.Ping(ctx))
		_, err = s.Migrate(ctx)
		require.NoError(t, err)
		require.NoError(t, s.EnsureDefaultWorkspace(ctx))
		ws, err := s.Workspace(ctx, store.DefaultWorkspaceID)
		require.NoError(t, err)
		require.Equal(t, "default", ws.Name)

		var st struct {
			SSL      bool
			Version  string
			ClientDN string
		}
		require.NoError(t, s.DB().WithContext(ctx).Raw(
			"SELECT ssl, version, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&st).Error)
		require.True(t, st.SSL)
		require.Equal(t, "TLSv1.3", st.Version)
		require.Contains(t, st.ClientDN, "CN=postgres")
	})

	other := tlstest.NewCA(t, "someone else's CA")
	strangerCert, strangerKey := other.Client(t, "postgres").WriteFiles(t, c.dir, "stranger")
	wrongUserCert, wrongUserKey := c.ca.Client(t, "mallory").WriteFiles(t, c.dir, "mallory")
	otherRoot := other.WriteFile(t, c.dir, "other-root")
	refused := []struct {
		name   string
		params map[string]string
	}{
		{"no client certificate", map[string]string{"sslmode": "verify-full", "sslrootcert": c.rootPEM}},
		{"plaintext", map[string]string{"sslmode": "disable"}},
		{"client certificate from another CA", map[string]string{"sslmode": "verify-full", "sslrootcert": c.rootPEM,
			"sslcert": strangerCert, "sslkey": strangerKey}},
		{"certificate for another user", map[string]string{"sslmode": "verify-full", "sslrootcert": c.rootPEM,
			"sslcert": wrongUserCert, "sslkey": wrongUserKey}},
		{"server not signed by the trusted root", map[string]string{"sslmode": "verify-full", "sslrootcert": otherRoot,
			"sslcert": good, "sslkey": goodKey}},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			s, err := store.Open(ctx, c.url(tc.params))
			require.NoError(t, err, "Open is lazy")
			defer s.Close()
			err = s.Ping(ctx)
			require.ErrorIs(t, err, store.ErrUnavailable)
			require.False(t, strings.Contains(err.Error(), "BEGIN"), "no PEM in errors")
		})
	}
}

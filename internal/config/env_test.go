package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/config"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Every secret setting (and the database URL, which may carry a password) has a _FILE
// variant; both set is an error naming both, the file's content is never quoted.
func TestFileVariants(t *testing.T) {
	var withFile []string
	for _, s := range config.Settings() {
		if s.FromFile {
			withFile = append(withFile, s.Name)
		}
		if s.Secret {
			require.True(t, s.FromFile, "%s is secret: it needs a _FILE variant", s.Name)
		}
	}
	require.ElementsMatch(t, []string{config.EnvDatabaseURL, config.EnvDatabaseListenURL, config.EnvBootstrapAPIKey, config.EnvControlPlaneToken}, withFile)

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	key := "ap_" + strings.Repeat("f", 43)
	cfg, err := config.Load(nil, envMap(map[string]string{
		"AUTHPIPE_BOOTSTRAP_API_KEY_FILE":   write("key", key+"\n"),
		"AUTHPIPE_DATABASE_URL_FILE":        write("db", "postgres://u:pw@db/x?sslmode=verify-full\n"),
		"AUTHPIPE_CONTROL_PLANE_URL":        "https://cp.example.com",
		"AUTHPIPE_CONTROL_PLANE_TOKEN_FILE": write("cp", "cp-token-SENTINEL"),
	}))
	require.NoError(t, err)
	require.Equal(t, key, cfg.BootstrapAPIKey.Reveal())
	require.Equal(t, "postgres://u:pw@db/x?sslmode=verify-full", cfg.DatabaseURL)
	require.Equal(t, "cp-token-SENTINEL", cfg.ControlPlaneToken.Reveal())

	_, err = config.Load(nil, envMap(map[string]string{
		"AUTHPIPE_BOOTSTRAP_API_KEY":      key,
		"AUTHPIPE_BOOTSTRAP_API_KEY_FILE": write("key2", key),
	}))
	require.ErrorContains(t, err, "AUTHPIPE_BOOTSTRAP_API_KEY: set together with AUTHPIPE_BOOTSTRAP_API_KEY_FILE")
	require.NotContains(t, err.Error(), key[5:])

	_, err = config.Load(nil, envMap(map[string]string{"AUTHPIPE_DATABASE_URL_FILE": filepath.Join(dir, "missing")}))
	require.ErrorContains(t, err, "AUTHPIPE_DATABASE_URL_FILE: cannot read")

	// A malformed value from a file is refused like one from the environment, unquoted.
	_, err = config.Load(nil, envMap(map[string]string{"AUTHPIPE_BOOTSTRAP_API_KEY_FILE": write("bad", "not-a-key-SENTINEL")}))
	require.ErrorContains(t, err, "AUTHPIPE_BOOTSTRAP_API_KEY")
	require.NotContains(t, err.Error(), "SENTINEL")

	// The flag still wins over the file.
	cfg, err = config.Load([]string{"--database-url", "sqlite://./x.db"}, envMap(map[string]string{"AUTHPIPE_DATABASE_URL_FILE": write("db2", "postgres://db/y")}))
	require.NoError(t, err)
	require.Equal(t, "sqlite://./x.db", cfg.DatabaseURL)
}

func TestUnknownVariables(t *testing.T) {
	got := config.UnknownVariables([]string{
		"AUTHPIPE_DATABSE_URL=postgres://u:SENTINEL@db/x",
		"AUTHPIPE_LOG_LEVEL=debug",
		"AUTHPIPE_DATABASE_URL_FILE=/run/secrets/db",
		"AUTHPIPE_TEST_POSTGRES_URL=x",
		"AUTHPIPE_WHATEVER=1",
		"HOME=/root",
		"AUTHPIPE_KEK_URI_FILE=/x",
	})
	require.Equal(t, []string{
		"unknown variable AUTHPIPE_DATABSE_URL is ignored (did you mean AUTHPIPE_DATABASE_URL?)",
		"unknown variable AUTHPIPE_KEK_URI_FILE is ignored (did you mean AUTHPIPE_KEK_URI?)",
		"unknown variable AUTHPIPE_WHATEVER is ignored",
	}, got)
}

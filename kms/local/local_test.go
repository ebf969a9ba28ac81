package local_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/kmstest"
	"github.com/authpipe/authpipe-proxy/kms/local"
	"github.com/stretchr/testify/require"
)

func TestConformance(t *testing.T) {
	kmstest.Run(t, func(t *testing.T) kms.KEK {
		k, err := local.Open("local://"+filepath.Join(t.TempDir(), "kek.key"), local.Options{Create: true})
		require.NoError(t, err)
		return k
	})
}

func TestCreateIs0600AndStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "kek.key")
	a, err := local.Open("local://"+path, local.Options{Create: true})
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	b, err := local.Open("local://"+path, local.Options{})
	require.NoError(t, err)
	require.Equal(t, a.ID(), b.ID(), "reopening the same file gives the same key")
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	_, err := local.Open("local://"+filepath.Join(dir, "missing"), local.Options{})
	require.Error(t, err, "a missing key is not created without Create")

	path := filepath.Join(dir, "kek.key")
	_, err = local.Open("local://"+path, local.Options{Create: true})
	require.NoError(t, err)
	require.NoError(t, os.Chmod(path, 0o644))
	_, err = local.Open("local://"+path, local.Options{})
	require.ErrorIs(t, err, kms.ErrConfig, "a world-readable key file is refused")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "short"), []byte("c2hvcnQ=\n"), 0o600))
	_, err = local.Open("local://"+filepath.Join(dir, "short"), local.Options{})
	require.ErrorIs(t, err, kms.ErrConfig)

	for _, bad := range []string{"local://", "file:///x", "local:///x?y=1"} {
		_, err = local.Open(bad, local.Options{Create: true})
		require.ErrorIs(t, err, kms.ErrConfig, bad)
	}
}

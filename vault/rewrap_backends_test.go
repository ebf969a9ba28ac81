package vault_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/awskms"
	"github.com/authpipe/authpipe-proxy/kms/awskms/awskmstest"
	"github.com/authpipe/authpipe-proxy/kms/azurekv"
	"github.com/authpipe/authpipe-proxy/kms/azurekv/azurekvtest"
	"github.com/authpipe/authpipe-proxy/kms/gcpkms"
	"github.com/authpipe/authpipe-proxy/kms/gcpkms/gcpkmstest"
	"github.com/authpipe/authpipe-proxy/kms/vaulttransit"
	"github.com/authpipe/authpipe-proxy/kms/vaulttransit/transittest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// The KEK backends on their protocol-faithful local endpoints, opened with their real
// clients as production opens them (each from its URI). A generous per-call timeout: the
// race detector and two busy cores make RSA and the SDK pipelines slow.
const rwBackendTimeout = 30 * time.Second

func rwGCPKMS(t *testing.T) kms.KEK {
	s := gcpkmstest.NewServer(t, gcpkmstest.Config{})
	k, err := gcpkms.Open(context.Background(), s.URI(s.CreateKey(t)), gcpkms.Options{Timeout: rwBackendTimeout})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func rwAzureKV(t *testing.T) kms.KEK {
	s := azurekvtest.NewServer(t, azurekvtest.Config{})
	k, err := azurekv.Open(context.Background(), s.URI(s.CreateKey(t, azurekvtest.RSA)),
		azurekv.Options{Credential: s.Credential(), Transport: s.HTTPClient(), Timeout: rwBackendTimeout})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func rwAWSKMS(t *testing.T) kms.KEK {
	s := awskmstest.NewServer(t, awskmstest.Config{})
	empty := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	k, err := awskms.Open(context.Background(), "awskms://"+s.CreateKey(t).ID+"?region="+s.Region()+"&endpoint="+s.URL,
		awskms.Options{Timeout: rwBackendTimeout, LoadOptions: []func(*config.LoadOptions) error{
			config.WithSharedConfigFiles([]string{empty}),
			config.WithSharedCredentialsFiles([]string{empty}),
			config.WithCredentialsProvider(awskmstest.Credentials()),
		}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func rwVaultTransit(t *testing.T) kms.KEK {
	s := transittest.New(t)
	k, err := vaulttransit.New(vaulttransit.Config{URI: s.URI("transit", "authpipe"), Timeout: rwBackendTimeout},
		vaulttransit.WithLookupEnv(func(name string) (string, bool) {
			if name == "VAULT_TOKEN" {
				return s.RootToken(), true
			}
			return "", false
		}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// TestRotationAcrossBackendsUnderLoad rotates one deployment's DEKs through every KEK
// backend that has a local endpoint, each step online and under load (see
// rwRotateUnderLoad): local → Google Cloud KMS → Azure Key Vault → AWS KMS → Vault
// Transit → local. Every backend is rotated to and away from, and the two new ones are
// rotated to and from the local KEK and the other cloud KMSs. (PKCS#11 is the one backend
// not in the chain: it needs SoftHSM through cgo; its rotation is the same code path.)
func TestRotationAcrossBackendsUnderLoad(t *testing.T) {
	n, dialects := 120, storetest.Dialects
	if testing.Short() {
		n = 60
	}
	if rwRace {
		// RSA and the SDK pipelines are ~10x slower under the race detector, and the load
		// on PostgreSQL keeps the KMSs busy longest: SQLite only, 30 workspaces. The full
		// run (both dialects) is in scripts/test.sh without -race.
		n, dialects = 30, []string{store.SQLite}
	}
	for _, d := range dialects {
		t.Run(d, func(t *testing.T) {
			s := storetest.Open(t, d)
			chain := []kms.KEK{rwNewKEK(t), rwGCPKMS(t), rwAzureKV(t), rwAWSKMS(t), rwVaultTransit(t), rwNewKEK(t)}
			latest := rwSeedMap(t, rwKeyring(t, s, rwRing(t, chain[0])), n)
			for step := 1; step < len(chain); step++ {
				old, next := chain[step-1], chain[step]
				rwRotateUnderLoad(t, s, old, next, n, latest, step*1_000_000, func() { _ = old.Close() })
			}
		})
	}
}

package azurekv_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/azurekv"
)

func TestParseURI(t *testing.T) {
	good := map[string]azurekv.Config{
		"azurekv://my-vault.vault.azure.net/keys/kek": {Host: "my-vault.vault.azure.net", Domain: "vault.azure.net", Name: "kek", Alg: azurekv.AlgRSAOAEP256},
		"azurekv://my-vault.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef": {Host: "my-vault.vault.azure.net", Domain: "vault.azure.net",
			Name: "kek", Version: "0123456789abcdef0123456789abcdef", Alg: azurekv.AlgRSAOAEP256},
		"azurekv://My-HSM.managedhsm.azure.net/keys/kek":                  {Host: "my-hsm.managedhsm.azure.net", Domain: "managedhsm.azure.net", ManagedHSM: true, Name: "kek", Alg: azurekv.AlgA256KW},
		"azurekv://my-hsm.managedhsm.azure.net/keys/kek?alg=RSA-OAEP-256": {Host: "my-hsm.managedhsm.azure.net", Domain: "managedhsm.azure.net", ManagedHSM: true, Name: "kek", Alg: azurekv.AlgRSAOAEP256},
		"azurekv://cn-vault.vault.azure.cn/keys/k?endpoint=https://127.0.0.1:8443": {Host: "cn-vault.vault.azure.cn", Domain: "vault.azure.cn", Name: "k",
			Alg: azurekv.AlgRSAOAEP256, Endpoint: "https://127.0.0.1:8443"},
	}
	for uri, want := range good {
		got, err := azurekv.ParseURI(uri)
		require.NoError(t, err, uri)
		require.Equal(t, want, got, uri)
	}
	for _, uri := range []string{
		"azurekv://",
		"azurekv://my-vault.vault.azure.net",
		"azurekv://my-vault.vault.azure.net/keys/",
		"azurekv://my-vault.vault.azure.net/secrets/kek",
		"azurekv://my-vault.vault.azure.net/keys/kek/v1/extra",
		"azurekv://my-vault.vault.azure.net/keys/k_e_k",
		"azurekv://my-vault.evil.example/keys/kek",
		"azurekv://vault.azure.net/keys/kek",
		"azurekv://ab.vault.azure.net/keys/kek",
		"azurekv://my-vault.vault.azure.net/keys/kek?alg=A256KW",
		"azurekv://my-vault.vault.azure.net/keys/kek?alg=RSA1_5",
		"azurekv://my-vault.vault.azure.net/keys/kek?endpoint=http://127.0.0.1:1",
		"azurekv://my-vault.vault.azure.net/keys/kek?endpoint=https://10.0.0.5",
		"azurekv://my-vault.vault.azure.net/keys/kek?tenant=x",
		"azurekv://my-vault.vault.azure.net/keys/kek#f",
	} {
		_, err := azurekv.ParseURI(uri)
		require.ErrorIs(t, err, kms.ErrConfig, uri)
	}
}

package vaulttransit_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/vaulttransit"
)

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		uri, id, addr string
		want          vaulttransit.Target
	}{
		{"vault-transit://vault.internal:8200/transit/authpipe", "vault-transit:vault.internal:8200/transit/authpipe",
			"https://vault.internal:8200",
			vaulttransit.Target{HostPort: "vault.internal:8200", Mount: "transit", Key: "authpipe", TLS: true}},
		{"vault-transit://Vault.Internal/transit/authpipe", "vault-transit:vault.internal:8200/transit/authpipe",
			"https://vault.internal:8200",
			vaulttransit.Target{HostPort: "vault.internal:8200", Mount: "transit", Key: "authpipe", TLS: true}},
		{"vault-transit://127.0.0.1:8201/team/transit/kek-1?tls=false", "vault-transit:127.0.0.1:8201/team/transit/kek-1",
			"http://127.0.0.1:8201",
			vaulttransit.Target{HostPort: "127.0.0.1:8201", Mount: "team/transit", Key: "kek-1"}},
		{"vault-transit://[::1]:8200/transit/k?namespace=/admin/team-a/&tls=true",
			"vault-transit:[::1]:8200/transit/k?namespace=admin/team-a", "https://[::1]:8200",
			vaulttransit.Target{HostPort: "[::1]:8200", Mount: "transit", Key: "k", Namespace: "admin/team-a", TLS: true}},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			got, err := vaulttransit.ParseURI(tc.uri)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.id, got.ID())
			require.Equal(t, tc.addr, got.Address())
		})
	}
}

func TestParseURIRefusals(t *testing.T) {
	for _, uri := range []string{
		"",
		"vault-transit:",
		"vault-transit://",
		"vault-transit://host:8200",
		"vault-transit://host:8200/transit",
		"vault-transit://host:8200/transit/",
		"vault-transit://host:8200//k",
		"vault-transit://host:8200/transit/../k",
		"vault-transit://host:8200/transit/k%2Fx",
		"vault-transit://host:0/transit/k",
		"vault-transit://host:99999/transit/k",
		"vault-transit://host:/transit/k",
		"vault-transit://hvs.secret@host:8200/transit/k",
		"vault-transit://host:8200/transit/k#frag",
		"vault-transit://host:8200/transit/k?tsl=false",
		"vault-transit://host:8200/transit/k?tls=maybe",
		"vault-transit://host:8200/transit/k?tls=false&tls=true",
		"vault-transit://host:8200/transit/k?namespace=a//b",
		"vault-transit:host/transit/k",
		"https://host:8200/transit/k",
		"awskms://host/transit/k",
	} {
		t.Run(uri, func(t *testing.T) {
			_, err := vaulttransit.ParseURI(uri)
			require.ErrorIs(t, err, kms.ErrConfig)
			require.NotContains(t, err.Error(), "hvs.secret", "a token in a URI is not echoed")
		})
	}
}

func TestNewValidatesEnvironment(t *testing.T) {
	const uri = "vault-transit://vault:8200/transit/k"
	for _, tc := range []struct {
		name string
		vars map[string]string
		uri  string
		ok   bool
	}{
		{"token", map[string]string{"VAULT_TOKEN": "hvs.SEKRIT"}, uri, true},
		{"approle", map[string]string{"VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "SEKRIT-ID"}, uri, true},
		{"kubernetes", map[string]string{"VAULT_K8S_ROLE": "r"}, uri, true},
		{"no credentials", map[string]string{}, uri, false},
		{"approle without secret", map[string]string{"VAULT_ROLE_ID": "r"}, uri, false},
		{"secret without role", map[string]string{"VAULT_SECRET_ID": "SEKRIT-ID"}, uri, false},
		{"token and approle", map[string]string{"VAULT_TOKEN": "hvs.SEKRIT", "VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "SEKRIT-ID"}, uri, false},
		{"approle and kubernetes", map[string]string{"VAULT_K8S_ROLE": "k", "VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "SEKRIT-ID"}, uri, false},
		{"skip verify refused", map[string]string{"VAULT_TOKEN": "hvs.SEKRIT", "VAULT_SKIP_VERIFY": "true"}, uri, false},
		{"skip verify false is fine", map[string]string{"VAULT_TOKEN": "hvs.SEKRIT", "VAULT_SKIP_VERIFY": "0"}, uri, true},
		{"skip verify garbage", map[string]string{"VAULT_TOKEN": "hvs.SEKRIT", "VAULT_SKIP_VERIFY": "yes please"}, uri, false},
		{"missing CA file", map[string]string{"VAULT_TOKEN": "hvs.SEKRIT", "VAULT_CACERT": "/nonexistent/ca.pem"}, uri, false},
		{"CA ignored for plain http", map[string]string{"VAULT_TOKEN": "hvs.SEKRIT", "VAULT_CACERT": "/nonexistent/ca.pem"}, uri + "?tls=false", true},
		{"namespace only in env", map[string]string{"VAULT_TOKEN": "hvs.SEKRIT", "VAULT_NAMESPACE": "team-a"}, uri, false},
		{"namespace agrees", map[string]string{"VAULT_TOKEN": "hvs.SEKRIT", "VAULT_NAMESPACE": "team-a"}, uri + "?namespace=team-a", true},
		{"bad approle mount", map[string]string{"VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "SEKRIT-ID", "VAULT_APPROLE_MOUNT": "../x"}, uri, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := vaulttransit.New(vaulttransit.Config{URI: tc.uri}, env(tc.vars))
			if tc.ok {
				require.NoError(t, err)
				require.NoError(t, k.Close())
				return
			}
			require.ErrorIs(t, err, kms.ErrConfig)
			require.NotContains(t, err.Error(), "SEKRIT", "secrets are not echoed")
		})
	}
	for _, opts := range [][]vaulttransit.Option{
		{vaulttransit.WithRetries(3, 0, 0)},
		{vaulttransit.WithRetries(1, 2, 1)},
		{vaulttransit.WithLookupEnv(nil)},
	} {
		_, err := vaulttransit.New(vaulttransit.Config{URI: uri}, append([]vaulttransit.Option{env(map[string]string{"VAULT_TOKEN": "hvs.SEKRIT"})}, opts...)...)
		require.ErrorIs(t, err, kms.ErrConfig)
	}
	_, err := vaulttransit.New(vaulttransit.Config{URI: uri, Timeout: -1}, env(map[string]string{"VAULT_TOKEN": "hvs.SEKRIT"}))
	require.ErrorIs(t, err, kms.ErrConfig)
}

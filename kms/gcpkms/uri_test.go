package gcpkms_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/gcpkms"
)

func TestParseURI(t *testing.T) {
	const key = "projects/my-proj/locations/europe-west1/keyRings/authpipe/cryptoKeys/kek"
	good := map[string]gcpkms.Config{
		"gcpkms://" + key: {Key: key},
		"gcpkms://" + key + "?endpoint=https://kms-psc.p.googleapis.com":   {Key: key, Endpoint: "kms-psc.p.googleapis.com:443"},
		"gcpkms://" + key + "?endpoint=https://10.1.2.3:8443":              {Key: key, Endpoint: "10.1.2.3:8443"},
		"gcpkms://" + key + "?endpoint=http://127.0.0.1:9000":              {Key: key, Endpoint: "127.0.0.1:9000", Insecure: true},
		"gcpkms://projects/p/locations/global/keyRings/r.1/cryptoKeys/k_2": {Key: "projects/p/locations/global/keyRings/r.1/cryptoKeys/k_2"},
	}
	for uri, want := range good {
		got, err := gcpkms.ParseURI(uri)
		require.NoError(t, err, uri)
		require.Equal(t, want, got, uri)
	}
	for _, uri := range []string{
		"gcpkms://",
		"gcpkms:" + key,
		"gcpkms://" + key + "/cryptoKeyVersions/3",
		"gcpkms://projects/p/locations/l/keyRings/r",
		"gcpkms://projects/p/locations/l/keyrings/r/cryptoKeys/k",
		"gcpkms://projects//locations/l/keyRings/r/cryptoKeys/k",
		"gcpkms://projects/p q/locations/l/keyRings/r/cryptoKeys/k",
		"gcpkms://" + key + "#x",
		"gcpkms://" + key + "?region=x",
		"gcpkms://" + key + "?endpoint=",
		"gcpkms://" + key + "?endpoint=http://kms.example.com:80",
		"gcpkms://" + key + "?endpoint=http://127.0.0.1",
		"gcpkms://" + key + "?endpoint=ftp://127.0.0.1:1",
		"gcpkms://" + key + "?endpoint=https://u:p@h",
		"gcpkms://" + key + "?endpoint=https://h/path",
	} {
		_, err := gcpkms.ParseURI(uri)
		require.ErrorIs(t, err, kms.ErrConfig, uri)
	}
}

package proxy_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/azurekv"
	"github.com/authpipe/authpipe-proxy/kms/azurekv/azurekvtest"
	"github.com/authpipe/authpipe-proxy/kms/gcpkms"
	"github.com/authpipe/authpipe-proxy/kms/gcpkms/gcpkmstest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// TestFailClosedOnCloudKMSOutage: with the credential KEK in Google Cloud KMS or Azure Key
// Vault (each through its real client on its local endpoint), an outage of that KMS makes
// a replica without the DEK cached answer 503 kms_unavailable and /readyz not ready, and
// it serves again when the KMS is back.
func TestFailClosedOnCloudKMSOutage(t *testing.T) {
	for name, setup := range map[string]func(t *testing.T) (kms.KEK, func(down bool)){
		"gcpkms": func(t *testing.T) (kms.KEK, func(bool)) {
			s := gcpkmstest.NewServer(t, gcpkmstest.Config{})
			k, err := gcpkms.Open(context.Background(), s.URI(s.CreateKey(t)), gcpkms.Options{MaxBackoff: 20 * time.Millisecond})
			require.NoError(t, err)
			t.Cleanup(func() { _ = k.Close() })
			return k, func(down bool) {
				if down {
					s.FailNext(1_000_000, codes.Unavailable)
				} else {
					s.FailNext(0, codes.OK)
				}
			}
		},
		"azurekv": func(t *testing.T) (kms.KEK, func(bool)) {
			s := azurekvtest.NewServer(t, azurekvtest.Config{ManagedHSM: true})
			k, err := azurekv.Open(context.Background(), s.URI(s.CreateKey(t, azurekvtest.Oct)),
				azurekv.Options{Credential: s.Credential(), Transport: s.HTTPClient(), MaxRetries: -1})
			require.NoError(t, err)
			t.Cleanup(func() { _ = k.Close() })
			return k, func(down bool) {
				if down {
					s.FailNext(1_000_000, http.StatusServiceUnavailable)
				} else {
					s.FailNext(0, 0)
				}
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			cloud, setDown := setup(t)
			dbURL := storetest.URL(t, store.SQLite)
			sec := newSwitchKEK(t)
			warm, _ := startWithKEKs(t, dbURL, ring(t, cloud), ring(t, sec))
			writer := warm.createKey("connections:write")
			reader := warm.createKey("tokens:read")
			c := warm.expect(warm.do("POST", "/v1/connections", writer, map[string]any{
				"provider": "stripe", "end_user_id": "user-1", "api_key": "sk_live_cloudkms_abcdefghijkl",
			}), 201, "")
			id := c.Body["id"].(string)
			warm.expect(warm.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")

			cold, _ := startWithKEKs(t, dbURL, ring(t, cloud), ring(t, sec))
			setDown(true)
			cold.expect(cold.do("GET", "/v1/connections/"+id+"/token", reader, nil), 503, "kms_unavailable")
			ready := cold.expect(cold.do("GET", "/readyz", "", nil), 503, "")
			require.Equal(t, "unavailable", ready.Body["checks"].(map[string]any)["kms"])
			warm.expect(warm.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "") // its DEK is cached

			setDown(false)
			cold.expect(cold.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")
		})
	}
}

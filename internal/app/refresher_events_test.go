package app

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/controlplane"
)

// Every failure code the refresher records maps onto the control plane's fixed set, and
// the event it makes passes the boundary's validation.
func TestErrorCodeMapsOntoTheFixedSet(t *testing.T) {
	for _, tc := range []struct {
		code string
		want controlplane.ErrorCode
	}{
		{"invalid_grant", controlplane.ErrorInvalidGrant},
		{"invalid_client", controlplane.ErrorInvalidClient},
		{"unauthorized_client", controlplane.ErrorInvalidClient},
		{"rate_limited", controlplane.ErrorRateLimited},
		{"provider_unavailable", controlplane.ErrorProviderError},
		{"provider_error", controlplane.ErrorProviderError},
		{"invalid_token_response", controlplane.ErrorProviderError},
		{"server_error", controlplane.ErrorProviderError},
		{"invalid_request", controlplane.ErrorProviderError},
		{"network_error", controlplane.ErrorNetwork},
		{"timeout", controlplane.ErrorNetwork},
		{"unsafe_url", controlplane.ErrorNetwork},
		{"kms_unavailable", controlplane.ErrorKMSUnavailable},
		{"provider_not_configured", controlplane.ErrorUnknown},
		{"health_check_failed", controlplane.ErrorUnknown},
		{"the provider said: token=abc", controlplane.ErrorUnknown},
	} {
		t.Run(tc.code, func(t *testing.T) {
			got := refreshErrorCode(tc.code)
			require.Equal(t, tc.want, got)
			e := controlplane.Event{ID: "cpe_abcdefghijklmnopqrstuvwxyz", Type: controlplane.EventConnectionRefreshFailed,
				At: time.Now(), WorkspaceID: "ws_default", ConnectionID: "conn_abc", Provider: "fosite",
				Status: controlplane.StatusActive, ErrorCode: got}
			require.NoError(t, e.Validate())
		})
	}
}

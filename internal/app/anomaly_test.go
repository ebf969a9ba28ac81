package app

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/metrics"
)

// The kind is one bounded list everywhere it crosses: the metric's label, the control
// plane's enum; and every kind's control-plane event passes the boundary's validation.
func TestAnomalyKindsAgree(t *testing.T) {
	require.Equal(t, audit.AnomalyKinds, metrics.AnomalyKinds)
	require.Len(t, controlplane.AnomalyKinds, len(audit.AnomalyKinds))
	for i, k := range audit.AnomalyKinds {
		require.Equal(t, k, string(controlplane.AnomalyKinds[i]))
		f := audit.Anomaly{WorkspaceID: "ws_default", Kind: k, Count: 3, Window: time.Minute}
		switch k {
		case audit.AnomalyProviderFailures, audit.AnomalyProviderNeedsReauth:
			f.Provider = "google"
		case audit.AnomalyRefreshStorm:
			f.Provider, f.ConnectionID = "google", "conn_abc234"
		default:
			f.APIKeyID = "apk_abc234"
		}
		e := anomalyEvent(f)
		e.ID, e.At = "cpe_a", time.Now()
		require.NoError(t, e.Validate(), k)
	}
}

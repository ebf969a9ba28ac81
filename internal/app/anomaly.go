package app

import "github.com/authpipe/authpipe-proxy/internal/audit"

// onAnomaly is told of each finding of the anomaly detection (internal/audit/anomaly.go),
// after its security.anomaly event is queued: counted (bounded kind label) and logged,
// with the key id and counts, never a credential.
func (a *App) onAnomaly(f audit.Anomaly) {
	a.Metrics.SecurityAnomaly(f.Kind)
	a.Log.Warn("security anomaly", "kind", f.Kind, "workspace_id", f.WorkspaceID, "api_key_id", f.APIKeyID,
		"count", f.Count, "baseline", f.Baseline, "window", f.Window.String())
}

package metrics

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The chart's alerts and dashboard name metrics; a renamed or removed metric would leave
// an alert that never fires. Every authpipe_* name they use must be registered here (or,
// for the few registered elsewhere, in the file that says so).
func TestChartRulesAndDashboardNameRegisteredMetrics(t *testing.T) {
	registeredElsewhere := map[string]string{
		"authpipe_outbound_refusals_total": "internal/app/tls.go",
	}
	m := New(BuildInfo{Version: "test"})
	// Vectors without a series are not gathered: give each one.
	m.kmsErrors.WithLabelValues("local", "ping", "unavailable")
	m.kmsDuration.WithLabelValues("local", "ping")
	m.refreshes.WithLabelValues("github", OutcomeSuccess)
	m.RefreshDuration("github", 0)
	m.SetConnections(nil)
	m.httpDuration.WithLabelValues("/healthz", "GET", "200")
	if err := m.ObserveAuditQueue(func() int { return 0 }); err != nil {
		t.Fatal(err)
	}
	if err := m.ObserveDEKCache("credentials", func() int { return 0 }); err != nil {
		t.Fatal(err)
	}
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range families {
		name := f.GetName()
		known[name] = true
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			known[name+suffix] = true
		}
	}
	root := filepath.Join("..", "..")
	metricName := regexp.MustCompile(`authpipe_[a-z0-9_]+`)
	for _, file := range []string{
		"charts/authpipe-proxy/files/prometheus-rules.yaml",
		"charts/authpipe-proxy/files/grafana-dashboard.json",
	} {
		raw, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		names := metricName.FindAllString(string(raw), -1)
		if len(names) < 5 {
			t.Fatalf("%s names only %d metrics: did the file move?", file, len(names))
		}
		for _, name := range names {
			if known[name] {
				continue
			}
			if home, ok := registeredElsewhere[name]; ok {
				src, err := os.ReadFile(filepath.Join(root, home))
				if err != nil || !strings.Contains(string(src), strings.TrimPrefix(name, "authpipe_")) {
					t.Errorf("%s: %s is said to be registered in %s, which does not name it", file, name, home)
				}
				continue
			}
			t.Errorf("%s uses %s, which no code registers", file, name)
		}
	}
}

package metrics

import (
	"database/sql"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// The operational families users look for: refresh duration, connections by status,
// webhook deliveries, database pool statistics and rate-limit refusals.

// Rate limits (the limit label of authpipe_rate_limit_refusals_total).
const (
	LimitPerKey = "per_key"
	LimitPerIP  = "per_ip"
)

// Webhook delivery outcomes (the outcome label of authpipe_webhook_deliveries_total).
const (
	DeliveryDelivered = "delivered" // a 2xx answer
	DeliveryRetry     = "retry"     // failed, another attempt is scheduled
	DeliveryGaveUp    = "gave_up"   // failed on its last attempt
)

// Connection statuses (the status label of authpipe_connections): the stored statuses.
var connectionStatuses = [...]string{"active", "needs_reauth", "error", "disconnected", "revoke_pending"}

type ops struct {
	refreshDuration *prometheus.HistogramVec
	connections     *prometheus.GaugeVec
	deliveries      [3]prometheus.Counter
	refusals        [2]prometheus.Counter
}

func newOps(f factory) ops {
	o := ops{
		refreshDuration: f.histogramVec("refresh_duration_seconds",
			"Duration of the provider's refresh-token grant call by provider (catalog name, or custom).",
			[]float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "provider"),
		connections: f.gaugeVec("connections",
			"Connections by stored status, counted periodically (every minute) by one grouped query.", "status"),
	}
	d := f.counterVec("webhook_deliveries_total",
		"Webhook delivery attempts by outcome (delivered, retry, gave_up).", "outcome")
	for i, n := range []string{DeliveryDelivered, DeliveryRetry, DeliveryGaveUp} {
		o.deliveries[i] = d.WithLabelValues(n)
	}
	r := f.counterVec("rate_limit_refusals_total",
		"Requests refused with 429 by limit (per_key: an API key's bucket; per_ip: a client address's bucket).", "limit")
	o.refusals[0], o.refusals[1] = r.WithLabelValues(LimitPerKey), r.WithLabelValues(LimitPerIP)
	return o
}

// RefreshDuration observes one refresh-token grant call of provider. Its signature is
// refresher.WithLatencyHook's.
func (m *Metrics) RefreshDuration(provider string, d time.Duration) {
	m.ops.refreshDuration.WithLabelValues(m.ProviderLabel(provider)).Observe(d.Seconds())
}

// SetConnections sets authpipe_connections from a count by stored status. Statuses
// missing from counts are set to 0; unknown statuses are ignored.
func (m *Metrics) SetConnections(counts map[string]int64) {
	for _, s := range connectionStatuses {
		m.ops.connections.WithLabelValues(s).Set(float64(counts[s]))
	}
}

// WebhookDelivery counts one delivery attempt; outcome is a Delivery constant (anything
// else is ignored).
func (m *Metrics) WebhookDelivery(outcome string) {
	if m == nil {
		return
	}
	switch outcome {
	case DeliveryDelivered:
		m.ops.deliveries[0].Inc()
	case DeliveryRetry:
		m.ops.deliveries[1].Inc()
	case DeliveryGaveUp:
		m.ops.deliveries[2].Inc()
	}
}

// RateLimited counts one 429 of the limit LimitPerKey or LimitPerIP. It does not allocate.
func (m *Metrics) RateLimited(limit string) {
	if m == nil {
		return
	}
	if limit == LimitPerKey {
		m.ops.refusals[0].Inc()
		return
	}
	m.ops.refusals[1].Inc()
}

// ObserveDB exports the connection pool's sql.DBStats at scrape time (the standard
// go_sql_* families of client_golang's DBStatsCollector, db_name="authpipe"): open, in
// use, idle, max open, wait count and wait duration, closes by reason.
func (m *Metrics) ObserveDB(db *sql.DB) error {
	return register(m.reg, collectors.NewDBStatsCollector(db, "authpipe"))
}

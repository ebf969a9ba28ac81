package metrics

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authpipe/authpipe-proxy/internal/buildinfo"
)

const namespace = "authpipe"

// Label values that stand for "not one of the known values".
const (
	Unmatched = "unmatched" // a request no route matched
	Other     = "other"
	Custom    = "custom" // a provider that is not a catalog entry
	Unknown   = "unknown"
)

// Outcomes of a refresh.
const (
	OutcomeSuccess     = "success"
	OutcomeNeedsReauth = "needs_reauth"
	OutcomeUnavailable = "unavailable"
	OutcomeError       = "error"
)

// Metrics is the registry of one server and its metric families. Safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	httpDuration *prometheus.HistogramVec
	httpMu       sync.RWMutex
	httpObs      map[httpKey]prometheus.Observer

	tokenReads map[[2]string]prometheus.Counter
	refreshes  *prometheus.CounterVec
	inbound    *prometheus.CounterVec
	providers  atomic.Pointer[map[string]struct{}]
	catalog    prometheus.Gauge
	sweepDone  prometheus.Gauge

	kmsDuration *prometheus.HistogramVec
	kmsErrors   *prometheus.CounterVec

	auditBatches   *prometheus.CounterVec
	anomalies      *prometheus.CounterVec
	auditEvents    prometheus.Counter
	auditBatchSize prometheus.Observer
	auditBroken    prometheus.Counter

	ops ops // ops.go
}

// BuildInfo names the running binary in authpipe_build_info.
type BuildInfo struct {
	Version  string // default: internal/buildinfo's (the linker's, or the toolchain's)
	Revision string // default: internal/buildinfo's
}

// New returns metrics on a fresh registry with the Go runtime and process collectors.
func New(info BuildInfo) *Metrics {
	reg := prometheus.NewRegistry()
	f := factory{reg}
	m := &Metrics{
		reg: reg,
		httpDuration: f.histogramVec("http_request_duration_seconds",
			"Latency of HTTP requests by route template, method and status code.",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
			"route", "method", "code"),
		httpObs: map[httpKey]prometheus.Observer{},
		refreshes: f.counterVec("token_refreshes_total",
			"Token refreshes by provider (catalog name, or custom) and outcome.", "provider", "outcome"),
		inbound: f.counterVec("inbound_webhooks_total",
			"Provider webhooks received by provider (catalog name, or custom) and outcome (relayed, or the refusal reason).",
			"provider", "outcome"),
		catalog: f.gauge("provider_catalog_size", "Number of provider templates in the built-in catalog."),
		sweepDone: f.gauge("refresh_sweep_last_success_timestamp_seconds",
			"Unix time at which the last refresh sweep of this process ran to completion (0 before the first)."),
		kmsDuration: f.histogramVec("kms_request_duration_seconds",
			"Latency of KEK calls by backend (local, awskms, vault-transit, pkcs11, gcpkms, azurekv) and operation (wrap, unwrap, ping).",
			[]float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
			"backend", "operation"),
		kmsErrors: f.counterVec("kms_errors_total",
			"Failed KEK calls by backend, operation and error kind.", "backend", "operation", "error"),
		anomalies: f.counterVec("security_anomalies_total",
			"Findings of the anomaly detection (security.anomaly audit events), by kind.", "kind"),
		auditBatches: f.counterVec("audit_batch_writes_total",
			"Group-commit attempts of the audit batch writer by outcome (a failed batch is retried).", "outcome"),
		auditEvents: f.counter("audit_events_appended_total", "Audit events appended by the batch writer."),
		auditBroken: f.counter("audit_chain_breaks_total", "Audit chain verifications that found a broken chain."),
		auditBatchSize: f.histogramVec("audit_batch_size", "Events per audit group commit.",
			prometheus.ExponentialBuckets(1, 2, 11)).WithLabelValues(),
	}
	m.ops = newOps(f)
	reads := f.counterVec("token_reads_total",
		"Token reads by credential type (the auth mode: oauth2, api_key, basic, oauth2_client_credentials, jwt_bearer, github_app; or unknown) and outcome (success or a problem code).",
		"credential_type", "outcome")
	m.tokenReads = map[[2]string]prometheus.Counter{}
	for _, ct := range []string{"oauth2", "api_key", "basic", "oauth2_client_credentials", "jwt_bearer", "github_app", Unknown} {
		for _, o := range tokenOutcomes() {
			m.tokenReads[[2]string{ct, o}] = reads.WithLabelValues(ct, o)
		}
	}
	for _, o := range []string{"success", "failure"} {
		m.auditBatches.WithLabelValues(o)
	}
	build := f.gaugeVec("build_info", "The running build (always 1).", "version", "revision", "go_version")
	build.WithLabelValues(buildLabels(info)...).Set(1)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
	return m
}

// Registry returns the registry (for tests and for registering more collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format (at most 4 scrapes at once).
func (m *Metrics) Handler() http.Handler { return m.handler }

// ---- HTTP ----

type httpKey struct {
	route  string
	method uint8
	code   uint16
}

var methodNames = [...]string{Other, http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace}

func methodIndex(m string) uint8 {
	for i := 1; i < len(methodNames); i++ {
		if methodNames[i] == m {
			return uint8(i)
		}
	}
	return 0
}

// ObserveHTTP records one request. route must be a route template or Unmatched (never a
// raw path); methods outside the standard set count as "other". It does not allocate once
// the (route, method, code) series exists.
func (m *Metrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	if status < 100 || status > 599 {
		status = 0
	}
	k := httpKey{route: route, method: methodIndex(method), code: uint16(status)}
	m.httpMu.RLock()
	o := m.httpObs[k]
	m.httpMu.RUnlock()
	if o == nil {
		o = m.httpObserver(k)
	}
	o.Observe(d.Seconds())
}

func (m *Metrics) httpObserver(k httpKey) prometheus.Observer {
	code := Other
	if k.code != 0 {
		code = strconv.Itoa(int(k.code))
	}
	o := m.httpDuration.WithLabelValues(k.route, methodNames[k.method], code)
	m.httpMu.Lock()
	m.httpObs[k] = o
	m.httpMu.Unlock()
	return o
}

// ---- tokens ----

// tokenOutcomes are the outcome label values of token reads: success or the stable
// problem code a failed read answered with.
func tokenOutcomes() []string {
	return []string{"success", "unauthorized", "forbidden", "not_found", "invalid_request", "needs_reauth",
		"disconnected", "refresh_unavailable", "kms_unavailable", "database_unavailable", "audit_unavailable",
		"rate_limited", "invalid_dpop_proof", "use_dpop_nonce", "token_in_url", "internal", Other}
}

// TokenRead counts one token read. credentialType is the connection's auth mode (oauth2,
// api_key, basic, oauth2_client_credentials, jwt_bearer, github_app) or "" (unknown);
// outcome is "success" or a problem code. Anything else is folded into unknown/other.
func (m *Metrics) TokenRead(credentialType, outcome string) {
	switch credentialType {
	case "oauth2", "api_key", "basic", "oauth2_client_credentials", "jwt_bearer", "github_app":
	default:
		credentialType = Unknown
	}
	c, ok := m.tokenReads[[2]string{credentialType, outcome}]
	if !ok {
		c = m.tokenReads[[2]string{credentialType, Other}]
	}
	c.Inc()
}

// ---- refreshes and the catalog ----

// SetCatalog records the built-in catalog's provider names: refreshes of these providers
// are labelled by name, every other provider key (user-chosen) as "custom".
func (m *Metrics) SetCatalog(names []string) {
	set := make(map[string]struct{}, len(names))
	for _, n := range names {
		set[n] = struct{}{}
	}
	m.providers.Store(&set)
	m.catalog.Set(float64(len(set)))
}

// ProviderLabel returns the label value for a provider key: the key if it is a catalog
// name, else "custom".
func (m *Metrics) ProviderLabel(provider string) string {
	if p := m.providers.Load(); p != nil {
		if _, ok := (*p)[provider]; ok {
			return provider
		}
	}
	return Custom
}

// Refresh counts one refresh of a provider's token. outcome is one of the Outcome
// constants; anything else counts as OutcomeError.
func (m *Metrics) Refresh(provider, outcome string) {
	switch outcome {
	case OutcomeSuccess, OutcomeNeedsReauth, OutcomeUnavailable, OutcomeError:
	default:
		outcome = OutcomeError
	}
	m.refreshes.WithLabelValues(m.ProviderLabel(provider), outcome).Inc()
}

// SweepCompleted records the end of a refresh sweep that ran to completion, as
// authpipe_refresh_sweep_last_success_timestamp_seconds.
func (m *Metrics) SweepCompleted(at time.Time) {
	m.sweepDone.Set(float64(at.UnixNano()) / 1e9)
}

// InboundWebhook counts one provider webhook: outcome is "relayed", a refusal reason
// (inbound and webhookverify constants: a fixed set) or "error".
func (m *Metrics) InboundWebhook(provider, outcome string) {
	m.inbound.WithLabelValues(m.ProviderLabel(provider), outcome).Inc()
}

// ---- audit, caches ----

// AuditWrite observes one group-commit attempt of the audit batch writer. Its signature
// is audit.BatchOptions.OnWrite.
func (m *Metrics) AuditWrite(n int, err error) {
	if err != nil {
		m.auditBatches.WithLabelValues("failure").Inc()
		return
	}
	m.auditBatches.WithLabelValues("success").Inc()
	m.auditEvents.Add(float64(n))
	m.auditBatchSize.Observe(float64(n))
}

// AnomalyKinds are the kind label's values besides "other": audit.AnomalyKinds
// (internal/app's test keeps the two equal; metrics imports no domain package).
var AnomalyKinds = []string{"key_connections_burst", "refused_read_burst", "new_client_address", "new_client_certificate",
	"provider_refresh_failures", "provider_needs_reauth_burst", "refresh_storm"}

// SecurityAnomaly counts a finding of the anomaly detection; kind is one of the bounded
// audit.Anomaly* kinds (anything else counts as "other").
func (m *Metrics) SecurityAnomaly(kind string) {
	if !slices.Contains(AnomalyKinds, kind) {
		kind = "other"
	}
	m.anomalies.WithLabelValues(kind).Inc()
}

// AuditChainBroken counts a verification that found a broken audit chain (API.md: a
// broken chain does not stop the server; it logs and counts it).
func (m *Metrics) AuditChainBroken() { m.auditBroken.Inc() }

// ObserveAuditQueue exports the audit writer's queue depth (audit.Batcher.QueueDepth).
func (m *Metrics) ObserveAuditQueue(depth func() int) error {
	return register(m.reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace,
		Name: "audit_queue_depth", Help: "Events waiting for the audit batch writer."},
		func() float64 { return float64(depth()) }))
}

// ObserveDEKCache exports the number of unwrapped DEKs a keyring holds. purpose is
// credentials or client_secrets. Misses show as unwrap calls in kms_request_duration_seconds.
func (m *Metrics) ObserveDEKCache(purpose string, entries func() int) error {
	return register(m.reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace,
		Name: "dek_cache_entries", Help: "Unwrapped data keys held in the keyring's cache, by purpose.",
		ConstLabels: prometheus.Labels{"purpose": purpose}},
		func() float64 { return float64(entries()) }))
}

// ObserveControlPlaneRefusals exports how many pulled control-plane configuration
// documents were refused (controlplane.Client.Refused).
func (m *Metrics) ObserveControlPlaneRefusals(refused func() int64) error {
	return register(m.reg, prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace,
		Name: "controlplane_config_refused_total", Help: "Pulled control-plane configuration documents refused (the last good one stays in force)."},
		func() float64 { return float64(refused()) }))
}

// register registers c; registering the same family twice is an error.
func register(reg *prometheus.Registry, c prometheus.Collector) error {
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// ---- helpers ----

type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

func buildLabels(info BuildInfo) []string {
	b := buildinfo.Get()
	version, revision := info.Version, info.Revision
	if version == "" {
		version = b.Version
	}
	if revision == "" {
		revision = b.Revision
	}
	return []string{version, revision, runtime.Version()}
}

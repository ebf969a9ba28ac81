package audit

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"
)

// Anomaly detection (issue 23), in the data plane, from what the read accounting already
// records: the sealer hands every closed read group (reads.go) to the detector, which
// counts per API key, over a window (AnomalyOptions.Window, default one minute):
//
//   - key_connections_burst: distinct connections read, when at least KeyConnections and
//     at least BaselineFactor times the key's own baseline (a moving average of its
//     earlier windows): a key that reads 3 connections suddenly reading 3,000;
//   - refused_read_burst: refused reads (401 of a known key, 403, 404, 409, 410, 423), when
//     at least RefusedReads: probing.
//
// A finding is one security.anomaly event in the workspace's chain (Data: kind, api_key_id,
// count, baseline, window — never a credential) and one OnAnomaly call (metric, webhook,
// control plane); the same key and kind fire at most once per Cooldown (default an hour),
// so a burst is one finding, not one per window. The defaults are far above a test
// suite's traffic.

// Per client (anomaly_clients.go): new_client_address and new_client_certificate, a key
// read from an address (a certificate) it has never used, once its warm-up is over. Per
// provider (anomaly_refresh.go): provider_refresh_failures, provider_needs_reauth_burst
// and refresh_storm, from the refresher's outcomes.

// Anomaly kinds (the bounded `kind` label of authpipe_security_anomalies_total).
const (
	AnomalyKeyConnections      = "key_connections_burst"
	AnomalyRefusedReads        = "refused_read_burst"
	AnomalyNewClientAddress    = "new_client_address"
	AnomalyNewClientCert       = "new_client_certificate"
	AnomalyProviderFailures    = "provider_refresh_failures"
	AnomalyProviderNeedsReauth = "provider_needs_reauth_burst"
	AnomalyRefreshStorm        = "refresh_storm"
)

// AnomalyKinds lists every kind: the metric's label, the webhook's and the control plane's
// kind take no other value.
var AnomalyKinds = []string{AnomalyKeyConnections, AnomalyRefusedReads, AnomalyNewClientAddress, AnomalyNewClientCert,
	AnomalyProviderFailures, AnomalyProviderNeedsReauth, AnomalyRefreshStorm}

// AnomalyActor is the actor of security.anomaly events.
const AnomalyActor = "detector"

// AnomalyOptions tune the detector; zero values take the defaults.
type AnomalyOptions struct {
	Window         time.Duration // default 1m
	KeyConnections int64         // default 1000
	BaselineFactor float64       // default 10
	RefusedReads   int64         // default 500
	Cooldown       time.Duration // default 1h
	// Clients turns on the client baseline (anomaly_clients.go); nil: off.
	Clients       ClientStore
	ClientKey     func(ctx context.Context) ([]byte, error) // the keyed hash's key
	ClientWarmup  time.Duration                             // default 24h
	ClientsPerKey int                                       // default 64
	// Per provider and connection, from ObserveRefresh (anomaly_refresh.go).
	ProviderFailures    int64 // default 100
	ProviderNeedsReauth int64 // default 50
	RefreshStorm        int64 // default 30
	// OnAnomaly is called for each finding after its event is queued (metrics, webhook,
	// control plane). It must not block.
	OnAnomaly func(Anomaly)
}

// Anomaly is one finding.
type Anomaly struct {
	WorkspaceID  string
	Kind         string
	APIKeyID     string // key kinds
	Provider     string // provider kinds
	ConnectionID string // refresh_storm
	Count        int64
	Baseline     int64
	Window       time.Duration
}

type anomalyKey struct{ workspace, actor string }

type keyWindow struct {
	conns   map[string]struct{}
	refused int64
}

// detector is the Batcher's anomaly detector (nil: off).
type detector struct {
	opts  AnomalyOptions
	mu    sync.Mutex
	start time.Time
	cur   map[anomalyKey]*keyWindow
	base  map[anomalyKey]float64 // moving average of distinct connections per window
	fired map[anomalyKey]map[string]time.Time
	// anomaly_refresh.go: the window's refresh outcomes per provider and per connection.
	prov     map[anomalyKey]*providerWindow
	provBase map[anomalyKey]*providerWindow
	conns    map[anomalyKey]*connWindow
}

const maxDetectorKeys = 100_000 // keys tracked; beyond, the baselines start again

func newDetector(o AnomalyOptions) *detector {
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	if o.KeyConnections <= 0 {
		o.KeyConnections = 1000
	}
	if o.BaselineFactor <= 0 {
		o.BaselineFactor = 10
	}
	if o.RefusedReads <= 0 {
		o.RefusedReads = 500
	}
	if o.Cooldown <= 0 {
		o.Cooldown = time.Hour
	}
	if o.ClientWarmup <= 0 {
		o.ClientWarmup = 24 * time.Hour
	}
	if o.ClientsPerKey <= 0 {
		o.ClientsPerKey = 64
	}
	if o.ProviderFailures <= 0 {
		o.ProviderFailures = 100
	}
	if o.ProviderNeedsReauth <= 0 {
		o.ProviderNeedsReauth = 50
	}
	if o.RefreshStorm <= 0 {
		o.RefreshStorm = 30
	}
	return &detector{opts: o, cur: map[anomalyKey]*keyWindow{}, base: map[anomalyKey]float64{},
		fired: map[anomalyKey]map[string]time.Time{}, prov: map[anomalyKey]*providerWindow{},
		provBase: map[anomalyKey]*providerWindow{}, conns: map[anomalyKey]*connWindow{}}
}

// observe counts closed read groups and, once the window is over, returns its findings.
func (d *detector) observe(evs []Event, now time.Time) []Anomaly {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.start.IsZero() {
		d.start = now
	}
	var out []Anomaly
	if now.Sub(d.start) >= d.opts.Window {
		out = d.close(now)
	}
	for i := range evs {
		e := &evs[i]
		if (e.Type != TokenRead && e.Type != ProxyRequest) || e.Actor == "" {
			continue
		}
		k := anomalyKey{e.WorkspaceID, e.Actor}
		w := d.cur[k]
		if w == nil {
			w = &keyWindow{conns: map[string]struct{}{}}
			d.cur[k] = w
		}
		if e.Outcome == Failure {
			if rd, ok := ParseReadData(e.Data); ok {
				w.refused += rd.Count
			}
			continue
		}
		if e.ConnectionID != "" {
			w.conns[e.ConnectionID] = struct{}{}
		}
	}
	return out
}

// close ends the window: findings, then the baselines move.
func (d *detector) close(now time.Time) []Anomaly {
	var out []Anomaly
	for k, w := range d.cur {
		n, base := int64(len(w.conns)), d.base[k]
		if n >= d.opts.KeyConnections && float64(n) >= d.opts.BaselineFactor*base && d.fire(k, AnomalyKeyConnections, now) {
			out = append(out, Anomaly{WorkspaceID: k.workspace, Kind: AnomalyKeyConnections, APIKeyID: k.actor, Count: n,
				Baseline: int64(base + 0.5), Window: d.opts.Window})
		}
		if w.refused >= d.opts.RefusedReads && d.fire(k, AnomalyRefusedReads, now) {
			out = append(out, Anomaly{WorkspaceID: k.workspace, Kind: AnomalyRefusedReads, APIKeyID: k.actor, Count: w.refused,
				Window: d.opts.Window})
		}
		if _, seen := d.base[k]; seen {
			d.base[k] = 0.8*base + 0.2*float64(n)
		} else {
			d.base[k] = float64(n) // a key's first window is its baseline
		}
	}
	out = d.closeRefreshes(out, now) // anomaly_refresh.go
	if len(d.base) > maxDetectorKeys || len(d.provBase) > maxDetectorKeys || len(d.fired) > 2*maxDetectorKeys {
		clear(d.base)
		clear(d.provBase)
		clear(d.fired)
	}
	clear(d.cur)
	d.start = now
	return out
}

func (d *detector) fire(k anomalyKey, kind string, now time.Time) bool {
	m := d.fired[k]
	if m == nil {
		m = map[string]time.Time{}
		d.fired[k] = m
	}
	if last, ok := m[kind]; ok && now.Sub(last) < d.opts.Cooldown {
		return false
	}
	m[kind] = now
	return true
}

// event is a finding's chain event: ids, counts and the window, never a credential, an
// address or a certificate.
func (a Anomaly) event(at time.Time) Event {
	m := map[string]string{"kind": a.Kind, "count": strconv.FormatInt(a.Count, 10),
		"baseline": strconv.FormatInt(a.Baseline, 10)}
	if a.Window > 0 {
		m["window"] = a.Window.String()
	}
	if a.APIKeyID != "" {
		m["api_key_id"] = a.APIKeyID
	}
	if a.Provider != "" {
		m["provider"] = a.Provider
	}
	data, _ := json.Marshal(m)
	return Event{WorkspaceID: a.WorkspaceID, At: at.UTC(), Type: SecurityAnomaly, Actor: AnomalyActor, Outcome: Failure,
		ConnectionID: a.ConnectionID, ErrorCode: a.Kind, Data: string(data)}
}

// report queues a finding's event and tells OnAnomaly.
func (b *Batcher) report(a Anomaly, now time.Time) {
	if err := b.Enqueue(a.event(now)); err != nil {
		b.opts.Logger.Warn("audit: security.anomaly not recorded", "kind", a.Kind, "err", err)
	}
	if b.detector.opts.OnAnomaly != nil {
		b.detector.opts.OnAnomaly(a)
	}
}

// detect runs the detector over the sealed groups and queues each finding's event.
func (b *Batcher) detect(evs []Event) {
	if b.detector == nil {
		return
	}
	now := b.opts.Now()
	for _, a := range b.detector.observe(evs, now) {
		b.report(a, now)
	}
}

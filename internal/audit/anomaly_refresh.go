package audit

import "time"

// Detection over the refresher's outcomes (issue 23), per detector window:
//
//   - provider_refresh_failures: failed refresh attempts of one provider in one workspace,
//     when at least ProviderFailures and BaselineFactor times the provider's own baseline
//     (a moving average of its earlier windows);
//   - provider_needs_reauth_burst: connections of one provider put in needs_reauth by a
//     refresh, when at least ProviderNeedsReauth and BaselineFactor times its baseline;
//   - refresh_storm: refresh attempts (served or failed, minting included) of one
//     connection, when at least RefreshStorm: a schedule refreshes a connection once per
//     token lifetime, so dozens of attempts in a window are a loop or someone forcing it.
//
// The same provider (connection) and kind fire at most once per Cooldown. ObserveRefresh is
// a lock and a map increment: the refresher calls it after each committed outcome.

// RefreshOutcome is one committed refresh outcome, as the refresher reports it.
type RefreshOutcome int

// Refresh outcomes.
const (
	RefreshSucceeded   RefreshOutcome = iota // a token was refreshed (or minted)
	RefreshFailed                            // an attempt failed (every attempt, not once per streak)
	RefreshNeedsReauth                       // the connection became needs_reauth
)

type providerWindow struct{ failures, reauth float64 }

type connWindow struct {
	provider string
	attempts int64
}

// ObserveRefresh counts one refresh outcome of a connection of provider in workspace. It
// does nothing when detection is off.
func (b *Batcher) ObserveRefresh(workspaceID, provider, connectionID string, o RefreshOutcome) {
	d := b.detector
	if d == nil || workspaceID == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.start.IsZero() {
		d.start = b.opts.Now() // the first window starts with its first observation
	}
	if o == RefreshNeedsReauth || o == RefreshFailed {
		pk := anomalyKey{workspaceID, provider}
		w := d.prov[pk]
		if w == nil {
			w = &providerWindow{}
			d.prov[pk] = w
		}
		if o == RefreshNeedsReauth {
			w.reauth++
			return // its failed attempt is reported on its own
		}
		w.failures++
	}
	if connectionID == "" {
		return
	}
	ck := anomalyKey{workspaceID, connectionID}
	c := d.conns[ck]
	if c == nil {
		if len(d.conns) >= maxDetectorKeys {
			return
		}
		c = &connWindow{provider: provider}
		d.conns[ck] = c
	}
	c.attempts++
}

// closeRefreshes ends the window of the refresh outcomes (called by close, under mu).
func (d *detector) closeRefreshes(out []Anomaly, now time.Time) []Anomaly {
	for k, w := range d.prov {
		base := d.provBase[k]
		if base == nil {
			base = &providerWindow{}
		}
		if w.failures >= float64(d.opts.ProviderFailures) && w.failures >= d.opts.BaselineFactor*base.failures &&
			d.fire(k, AnomalyProviderFailures, now) {
			out = append(out, Anomaly{WorkspaceID: k.workspace, Kind: AnomalyProviderFailures, Provider: k.actor,
				Count: int64(w.failures), Baseline: int64(base.failures + 0.5), Window: d.opts.Window})
		}
		if w.reauth >= float64(d.opts.ProviderNeedsReauth) && w.reauth >= d.opts.BaselineFactor*base.reauth &&
			d.fire(k, AnomalyProviderNeedsReauth, now) {
			out = append(out, Anomaly{WorkspaceID: k.workspace, Kind: AnomalyProviderNeedsReauth, Provider: k.actor,
				Count: int64(w.reauth), Baseline: int64(base.reauth + 0.5), Window: d.opts.Window})
		}
	}
	// Every provider seen so far moves its baseline, a quiet window too (it lowers it).
	for k, base := range d.provBase {
		w := d.prov[k]
		if w == nil {
			w = &providerWindow{}
		}
		base.failures, base.reauth = 0.8*base.failures+0.2*w.failures, 0.8*base.reauth+0.2*w.reauth
	}
	for k, w := range d.prov {
		if _, seen := d.provBase[k]; !seen {
			// A provider's first window with failures is no baseline of its own: a provider
			// that starts failing is the finding (unlike a key's first window of reads).
			d.provBase[k] = &providerWindow{failures: 0.2 * w.failures, reauth: 0.2 * w.reauth}
		}
	}
	for k, c := range d.conns {
		if c.attempts >= d.opts.RefreshStorm && d.fire(anomalyKey{k.workspace, "conn:" + k.actor}, AnomalyRefreshStorm, now) {
			out = append(out, Anomaly{WorkspaceID: k.workspace, Kind: AnomalyRefreshStorm, Provider: c.provider,
				ConnectionID: k.actor, Count: c.attempts, Window: d.opts.Window})
		}
	}
	clear(d.prov)
	clear(d.conns)
	return out
}

package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"time"
)

// The client baseline (issue 23): each API key's client addresses (and mTLS client
// certificates), so that a key read from one it has never used is a finding —
// new_client_address, new_client_certificate — once per new client per key, not per read,
// and at most maxNewClientFindings per key and kind per window, then one with the count.
//
// The hot path pays nothing for it: a served read's ReadKey carries the resolved client
// address and the verified certificate's SHA-256 (a copy, no allocation), so reads from
// another client count in a group of their own; when the sealer closes the groups it
// hands their distinct clients to a goroutine of their own, which keeps what it has
// already recorded in memory and asks the store (ClientStore) about the rest, one call
// per key and window. The store keeps, per key, a keyed hash of each client
// (HMAC-SHA256 under ClientKey, never the address in clear), bounded to the
// ClientsPerKey most recently seen, with first and last seen; an IPv6 address counts by
// its /64 (privacy addresses rotate inside it). A key's first client starts its warm-up
// (ClientWarmup): clients first seen before it ends are learnt, not reported.

// Client kinds, as ClientStore keeps them.
const (
	ClientAddress     = "address"
	ClientCertificate = "certificate"
)

// ClientSeen is one client of a key: its kind and keyed hash.
type ClientSeen struct{ Kind, Hash string }

// ClientStore keeps the client baseline (vault/store implements it).
type ClientStore interface {
	// LearnAPIKeyClients records that the key used seen at now (starting its warm-up of
	// warmup at its first client) and keeps its keep most recent clients; it returns the
	// clients it had never seen, when the key's warm-up is over.
	LearnAPIKeyClients(ctx context.Context, workspaceID, apiKeyID string, seen []ClientSeen, warmup time.Duration,
		keep int, now time.Time) (fresh []ClientSeen, err error)
}

// clientObs is a served read group's client, handed from the sealer to the learner.
type clientObs struct {
	workspace, key string
	addr           netip.Addr
	cert           [32]byte
}

// clientTouch is how often a known client's last_seen is written again.
const clientTouch = time.Hour

// clientsOf appends the client of a closed group, when it has one, to obs.
func (g *readGroup) clientsOf(obs []clientObs) []clientObs {
	k := &g.key
	if k.Outcome != Success || k.Actor == "" || (!k.Client.IsValid() && k.Cert == [32]byte{}) {
		return obs
	}
	return append(obs, clientObs{workspace: k.WorkspaceID, key: k.Actor, addr: k.Client, cert: k.Cert})
}

// learnClients hands the window's clients to the learner, without waiting: when it is
// behind, this window's clients are seen again in a later one.
func (b *Batcher) learnClients(obs []clientObs) {
	if b.clientQ == nil || len(obs) == 0 {
		return
	}
	select {
	case b.clientQ <- append([]clientObs(nil), obs...):
	default:
		// Not silent: a learner that keeps falling behind is blind to new clients.
		b.clientsLost.Add(1)
		b.opts.Logger.Warn("audit: client baseline behind, a window's clients not learnt", "clients", len(obs),
			"lost_total", b.clientsLost.Load())
	}
}

// ClientBaselineLost is how many windows (the learner behind) and per-key batches (the
// store failed or timed out) of clients the client baseline could not learn.
func (b *Batcher) ClientBaselineLost() int64 { return b.clientsLost.Load() }

// maxNewClientFindings caps the new-client findings per key and kind per detector window:
// a key read from many new clients (a flood, or a botnet) is that many findings and then
// one more, at the window's end, with the count of the rest.
const maxNewClientFindings = 5

// clientFindings is the learner's count of new-client findings in the current window.
type clientFindings struct {
	start time.Time
	fired map[clientFindingKey]int64 // findings reported
	over  map[clientFindingKey]int64 // new clients beyond the cap, not yet reported
}

type clientFindingKey struct {
	key  anomalyKey
	kind string
}

// newClient reports a new client of k, within the cap.
func (b *Batcher) newClient(k anomalyKey, kind string, now time.Time) {
	f := &b.newClients
	if f.fired == nil {
		f.fired, f.over = map[clientFindingKey]int64{}, map[clientFindingKey]int64{}
	}
	fk := clientFindingKey{k, kind}
	if f.fired[fk] >= maxNewClientFindings {
		f.over[fk]++
		return
	}
	f.fired[fk]++
	b.report(Anomaly{WorkspaceID: k.workspace, Kind: kind, APIKeyID: k.actor, Count: 1}, now)
}

// rollClientWindow ends the learner's window once the detector's is over: one finding per
// key and kind with the count of the new clients beyond the cap.
func (b *Batcher) rollClientWindow(now time.Time) {
	f := &b.newClients
	w := b.detector.opts.Window
	if f.start.IsZero() {
		f.start = now
	}
	if now.Sub(f.start) < w {
		return
	}
	for fk, n := range f.over {
		b.report(Anomaly{WorkspaceID: fk.key.workspace, Kind: fk.kind, APIKeyID: fk.key.actor, Count: n, Window: w}, now)
	}
	clear(f.fired)
	clear(f.over)
	f.start = now
}

// watchClients is the learner: it runs beside the sealer until Stop.
func (b *Batcher) watchClients(ctx context.Context) {
	known := map[anomalyKey]map[ClientSeen]time.Time{} // recorded, by key: when
	n := 0
	tick := time.NewTicker(b.detector.opts.Window)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			b.rollClientWindow(b.opts.Now())
		case obs := <-b.clientQ:
			if n > maxDetectorKeys {
				clear(known)
				n = 0
			}
			n += b.learn(ctx, known, obs)
		case <-b.stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// learn records one window's clients and reports the new ones; it returns how many
// entries it added to known.
func (b *Batcher) learn(ctx context.Context, known map[anomalyKey]map[ClientSeen]time.Time, obs []clientObs) int {
	o := &b.detector.opts
	key, err := o.ClientKey(ctx)
	if err != nil {
		b.opts.Logger.Warn("audit: client baseline key unavailable", "err", err)
		return 0
	}
	now := b.opts.Now()
	b.rollClientWindow(now)
	todo := map[anomalyKey][]ClientSeen{}
	want := func(k anomalyKey, c ClientSeen) {
		if at, ok := known[k][c]; ok && now.Sub(at) < clientTouch {
			return
		}
		for _, d := range todo[k] {
			if d == c {
				return
			}
		}
		todo[k] = append(todo[k], c)
	}
	for _, c := range obs {
		k := anomalyKey{c.workspace, c.key}
		if c.addr.IsValid() {
			want(k, ClientSeen{ClientAddress, ClientHash(key, ClientAddress, clientAddrBytes(c.addr))})
		}
		if c.cert != [32]byte{} {
			want(k, ClientSeen{ClientCertificate, ClientHash(key, ClientCertificate, c.cert[:])})
		}
	}
	added := 0
	for k, seen := range todo {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fresh, err := o.Clients.LearnAPIKeyClients(wctx, k.workspace, k.actor, seen, o.ClientWarmup, o.ClientsPerKey, now)
		cancel()
		if err != nil {
			b.clientsLost.Add(1)
			b.opts.Logger.Warn("audit: client baseline not recorded", "api_key_id", k.actor, "err", err,
				"lost_total", b.clientsLost.Load())
			continue
		}
		m := known[k]
		if m == nil {
			m = map[ClientSeen]time.Time{}
			known[k] = m
		}
		for _, c := range seen {
			if _, ok := m[c]; !ok {
				added++
			}
			m[c] = now
		}
		for _, c := range fresh {
			kind := AnomalyNewClientAddress
			if c.Kind == ClientCertificate {
				kind = AnomalyNewClientCert
			}
			b.newClient(k, kind, now)
		}
	}
	return added
}

// ClientAddr is a client address as the baseline counts it: an IPv4 address (unmapped),
// or the first address of an IPv6 address's /64 (privacy addresses rotate inside it), no
// zone. It does not allocate.
func ClientAddr(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is4() {
		return a
	}
	p, _ := a.Prefix(64)
	return p.Addr()
}

// clientAddrBytes is what identifies an address: an IPv4 address, or an IPv6 address's /64.
func clientAddrBytes(a netip.Addr) []byte {
	a = ClientAddr(a)
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:8]
}

// ClientHash is the keyed hash a client is kept under: the first 128 bits, in hex, of
// HMAC-SHA256(key, kind ‖ 0 ‖ raw).
func ClientHash(key []byte, kind string, raw []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write(raw)
	return hex.EncodeToString(m.Sum(nil)[:16])
}

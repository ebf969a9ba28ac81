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
// new_client_address, new_client_certificate — once per new client per key, not per read.
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
	}
}

// watchClients is the learner: it runs beside the sealer until Stop.
func (b *Batcher) watchClients(ctx context.Context) {
	known := map[anomalyKey]map[ClientSeen]time.Time{} // recorded, by key: when
	n := 0
	for {
		select {
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
			b.opts.Logger.Warn("audit: client baseline not recorded", "api_key_id", k.actor, "err", err)
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
			b.report(Anomaly{WorkspaceID: k.workspace, Kind: kind, APIKeyID: k.actor, Count: 1}, now)
		}
	}
	return added
}

// clientAddrBytes is what identifies an address: an IPv4 address, or an IPv6 address's /64.
func clientAddrBytes(a netip.Addr) []byte {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	p, _ := a.Prefix(64)
	b := p.Addr().As16()
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

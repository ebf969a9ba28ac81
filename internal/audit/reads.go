package audit

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Aggregated read accounting. A token read (and a forwarded request) is not one chain event
// of its own: reads are counted per ReadKey — workspace, API key, connection, outcome — and
// each group becomes one event when its window closes, with ReadData in Event.Data:
//
//	{"count":N,"first_at":"<RFC 3339, UTC, µs>","last_at":"..."}
//
// (a proxy.request event adds "method" and "status", the upstream status as a string).
// A window spans at most BatchOptions.Window (1 s): the sealer closes every open group once
// per window, and a read that finds its group older than that closes it itself. The chain,
// its hashing and its verification do not change: the count is part of the hashed Data.
//
// On the hot path counting is a lock, one map lookup and an increment: no allocation once
// the group's slot exists (the tables are cleared, not dropped, each window).

// ReadKey identifies the reads one event counts. Method and Status are set for forwarded
// requests only (proxy.request).
type ReadKey struct {
	WorkspaceID  string
	Actor        string // the API key id
	ConnectionID string
	Type         string // TokenRead, or "proxy.request"
	Outcome      string // Success or Failure
	ErrorCode    string // the problem code of a refused read
	Method       string
	Status       int
	// Client and Cert are set on served reads only: the client address the edge resolved
	// and the SHA-256 of the verified client certificate (mTLS), for the client baseline
	// (anomaly_clients.go). Neither is written to the chain: reads from another client
	// count in a group of their own. Count keeps an address as the baseline counts it
	// (ClientAddr: an IPv6 address by its /64), so that rotating addresses inside one /64
	// neither splits the aggregation nor grows the groups.
	Client netip.Addr
	Cert   [32]byte
}

// ReadData is the Data of an aggregated read event.
type ReadData struct {
	Count   int64     `json:"count"`
	FirstAt time.Time `json:"first_at"`
	LastAt  time.Time `json:"last_at"`
	Method  string    `json:"method,omitempty"`
	Status  string    `json:"status,omitempty"`
}

// ParseReadData reads the Data of a read event; ok is false for any other Data.
func ParseReadData(data string) (d ReadData, ok bool) {
	if data == "" || json.Unmarshal([]byte(data), &d) != nil || d.Count < 1 {
		return ReadData{}, false
	}
	return d, true
}

// readShards spreads the groups over independently locked tables.
const readShards = 32

// readGroup is one open group. first and last are wall-clock Unix microseconds, the
// precision stored, so the window is bounded in the clock that is written (the monotonic
// clock and the wall clock drift apart: a stepped wall clock must not stretch a window).
type readGroup struct {
	key         ReadKey
	count       int64
	first, last int64
}

// readShard is one table: groups holds the open groups, index maps a key to its slot.
type readShard struct {
	mu     sync.Mutex
	index  map[ReadKey]int
	groups []readGroup
	_      [40]byte // keep neighbouring shards' locks off one cache line
}

type readTable struct {
	seed   maphash.Seed
	shards [readShards]readShard
}

func (t *readTable) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].index = make(map[ReadKey]int, 64)
		t.shards[i].groups = make([]readGroup, 0, 64)
	}
}

func (t *readTable) shard(k *ReadKey) *readShard {
	return &t.shards[maphash.String(t.seed, k.ConnectionID)%readShards]
}

// Count accounts one read at time at. It returns nil once the read is counted in a group
// that will be written; the caller may then serve it. It returns ErrUnavailable when the
// log has been unwritable for the grace period (fail closed), or after Stop.
//
// When the read closes its group's window and the writer's queue is full, Count waits for
// room (back-pressure) while the log is healthy and ctx lasts, instead of refusing.
func (b *Batcher) Count(ctx context.Context, k ReadKey, at time.Time) error {
	if !b.Healthy() {
		return ErrUnavailable
	}
	if k.Client.IsValid() {
		k.Client = ClientAddr(k.Client) // one group per client as the baseline counts it (an IPv6 /64)
	}
	sh := b.reads.shard(&k)
	us, window := at.UnixMicro(), b.opts.Window.Microseconds()
	for {
		sh.mu.Lock()
		if b.stopped.Load() {
			sh.mu.Unlock()
			return ErrUnavailable
		}
		i, ok := sh.index[k]
		if !ok {
			sh.index[k] = len(sh.groups)
			sh.groups = append(sh.groups, readGroup{key: k, count: 1, first: us, last: us})
			sh.mu.Unlock()
			return nil
		}
		g := &sh.groups[i]
		if g.count == 0 {
			g.count, g.first, g.last = 1, us, us
			sh.mu.Unlock()
			return nil
		}
		// A read whose clock was taken before its group's first (it waited for the lock)
		// extends the window backwards.
		first, last := min(g.first, us), max(g.last, us)
		if last-first <= window {
			g.count, g.first, g.last = g.count+1, first, last
			sh.mu.Unlock()
			return nil
		}
		// The group's window is over (the sealer is late): close it here, keep the slot
		// empty for this read, and hand the event to the writer, waiting for room.
		ev := g.event()
		g.count = 0
		sh.mu.Unlock()
		if err := b.enqueueWait(ctx, ev); err != nil {
			b.keep(ev) // served reads are never dropped: the sealer writes it later
			return err
		}
	}
}

// event renders a closed group as its chain event (At is the last read).
func (g *readGroup) event() Event {
	d := ReadData{Count: g.count, FirstAt: time.UnixMicro(g.first).UTC(), LastAt: time.UnixMicro(g.last).UTC(),
		Method: g.key.Method}
	if g.key.Status != 0 {
		d.Status = strconv.Itoa(g.key.Status)
	}
	data, _ := json.Marshal(d)
	k := &g.key
	return Event{WorkspaceID: k.WorkspaceID, At: d.LastAt, Type: k.Type, Actor: k.Actor, ConnectionID: k.ConnectionID,
		Outcome: k.Outcome, ErrorCode: k.ErrorCode, Data: string(data)}
}

// sealAll closes every open group and appends its event to out (and its client, if any,
// to obs). The tables are cleared, not reallocated, so the next window's reads of the same
// keys do not allocate.
func (t *readTable) sealAll(out []Event, obs []clientObs) ([]Event, []clientObs) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for j := range sh.groups {
			if sh.groups[j].count > 0 {
				out = append(out, sh.groups[j].event())
				obs = sh.groups[j].clientsOf(obs)
			}
		}
		clear(sh.groups) // drop the keys' references
		sh.groups = sh.groups[:0]
		clear(sh.index)
		sh.mu.Unlock()
	}
	return out, obs
}

// keep puts events aside for the sealer (their reads were served: they must be written).
func (b *Batcher) keep(evs ...Event) {
	b.pendingMu.Lock()
	b.pending = append(b.pending, evs...)
	b.pendingMu.Unlock()
}

func (b *Batcher) takePending() []Event {
	b.pendingMu.Lock()
	defer b.pendingMu.Unlock()
	p := b.pending
	b.pending = nil
	return p
}

// enqueueWait queues e, waiting for room while the writer is healthy (back-pressure). It
// fails with ErrUnavailable once the log has been unwritable for the grace period, when
// ctx ends, or after Stop.
func (b *Batcher) enqueueWait(ctx context.Context, e Event) error {
	select {
	case b.queue <- e:
		b.wakeIfFull()
		return nil
	default:
	}
	b.waits.Add(1)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if !b.Healthy() {
			return ErrUnavailable
		}
		select {
		case b.queue <- e:
			b.wakeIfFull()
			return nil
		case <-tick.C:
		case <-b.stop:
			return ErrUnavailable
		case <-ctx.Done():
			return ErrUnavailable
		}
	}
}

// seal runs beside Run: once per window it closes the open groups and queues their events,
// waiting for room as long as it takes (they stand for reads already served). On Stop it
// closes the groups one last time and leaves the events in pending for Run's drain.
func (b *Batcher) seal(ctx context.Context) {
	defer close(b.sealed)
	tick := time.NewTicker(b.opts.Window)
	defer tick.Stop()
	var buf []Event
	var obs []clientObs
	for {
		select {
		case <-tick.C:
		case <-b.stop:
			b.stopped.Store(true)
			evs, _ := b.reads.sealAll(nil, nil)
			b.keep(evs...)
			return
		case <-ctx.Done():
			return
		}
		evs, seen := b.reads.sealAll(append(buf[:0], b.takePending()...), obs[:0])
		obs = seen
		b.detect(evs)
		b.learnClients(obs)
		for i, e := range evs {
			select {
			case b.queue <- e:
				continue
			default:
				b.waits.Add(1)
			}
			select {
			case b.queue <- e:
			case <-b.stop:
				b.keep(evs[i:]...)
				b.stopped.Store(true)
				rest, _ := b.reads.sealAll(nil, nil)
				b.keep(rest...)
				return
			case <-ctx.Done():
				return
			}
		}
		b.wakeIfFull()
		if cap(evs) <= 4096 {
			buf = evs[:0] // reuse the buffer (clear it first: it holds strings)
			clear(buf[:cap(buf)])
		}
	}
}

// ReadWaits is how many times a read (or the sealer) found the writer's queue full and
// waited for room.
func (b *Batcher) ReadWaits() int64 { return b.waits.Load() }

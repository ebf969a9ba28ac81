package audit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// ErrUnavailable: the batch writer cannot take the event (queue full, or it has not been
// able to write for longer than the grace period). The caller must fail closed.
var ErrUnavailable = problem.Sentinel(problem.ErrAuditUnavailable, "audit: log unavailable")

// Appender persists events in one transaction. vault/store implements it.
type Appender interface {
	AppendEvents(ctx context.Context, evs ...Event) error
}

// BatchOptions tune a Batcher.
type BatchOptions struct {
	QueueSize int           // bounded queue; default 16384
	MaxBatch  int           // events per transaction; default 512
	MaxDelay  time.Duration // how long an event may wait for its batch; default 100ms
	Grace     time.Duration // failing this long makes Enqueue and Count refuse; default 3s
	// Window is the longest span of one aggregated read event (reads.go); default 1s, the
	// most API.md allows.
	Window time.Duration
	Logger *slog.Logger
	Now    func() time.Time
	// OnWrite is called after each attempt with the batch size and the error (metrics).
	OnWrite func(n int, err error)
	// Anomalies, when set, turns on anomaly detection over the counted reads (anomaly.go).
	Anomalies *AnomalyOptions
}

// Batcher is the single writer that appends high-volume events (token.read) to the chain
// in group commits, so that reading a token does not wait for a commit of its own.
// Changes (create, refresh, disconnect, ...) do not use it: they append their event in
// the transaction that makes the change.
type Batcher struct {
	app          Appender
	opts         BatchOptions
	queue        chan Event
	failingSince atomic.Int64  // unix nanos of the first failure of the current streak; 0 = healthy
	full         chan struct{} // Enqueue's signal that a whole batch is queued
	done         chan struct{}
	stopOnce     sync.Once
	stop         chan struct{}

	reads     readTable     // reads.go: the open groups of counted reads
	stopped   atomic.Bool   // set by the sealer on Stop: Count refuses
	sealed    chan struct{} // closed when the sealer has returned
	pendingMu sync.Mutex
	pending   []Event // closed groups not yet queued
	waits     atomic.Int64
	detector  *detector        // anomaly.go; nil: off
	clientQ   chan []clientObs // anomaly_clients.go; nil: off
	// anomaly_clients.go: the learner's findings this window (its goroutine only) and the
	// windows and batches of clients it could not learn.
	newClients  clientFindings
	clientsLost atomic.Int64
}

// NewBatcher returns a Batcher; call Run to start it.
func NewBatcher(app Appender, opts BatchOptions) *Batcher {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 16384
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 100 * time.Millisecond
	}
	if opts.Grace <= 0 {
		opts.Grace = 3 * time.Second
	}
	if opts.Window <= 0 || opts.Window > time.Second {
		opts.Window = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := &Batcher{app: app, opts: opts, queue: make(chan Event, opts.QueueSize),
		full: make(chan struct{}, 1), done: make(chan struct{}), stop: make(chan struct{}), sealed: make(chan struct{})}
	b.reads.init()
	if opts.Anomalies != nil {
		b.detector = newDetector(*opts.Anomalies)
		if opts.Anomalies.Clients != nil && opts.Anomalies.ClientKey != nil {
			b.clientQ = make(chan []clientObs, 16)
		}
	}
	return b
}

// Enqueue hands an event to the writer without blocking. It fails with ErrUnavailable
// when the queue is full or the writer has been failing for longer than the grace period.
func (b *Batcher) Enqueue(e Event) error {
	if !b.Healthy() {
		return ErrUnavailable
	}
	select {
	case b.queue <- e:
	default:
		return ErrUnavailable
	}
	b.wakeIfFull()
	return nil
}

// wakeIfFull wakes the writer early when a whole batch is waiting.
func (b *Batcher) wakeIfFull() {
	if len(b.queue) >= b.opts.MaxBatch {
		select {
		case b.full <- struct{}{}:
		default:
		}
	}
}

// Healthy reports whether the writer is keeping up.
func (b *Batcher) Healthy() bool {
	since := b.failingSince.Load()
	return since == 0 || b.opts.Now().Sub(time.Unix(0, since)) < b.opts.Grace
}

// QueueDepth is the number of events waiting.
func (b *Batcher) QueueDepth() int { return len(b.queue) }

// Run writes batches until Stop; then it flushes what is queued (bounded by ctx).
//
// After the first event of a batch it sleeps for MaxDelay (or until Enqueue reports a
// full batch queued) and then takes what is queued, instead of receiving event by event:
// a send to the buffered queue with no receiver waiting wakes nobody, so the hot path
// does not pay a goroutine wake-up per token read.
//
// Run also starts the sealer (reads.go), which turns counted reads into events once per
// window.
func (b *Batcher) Run(ctx context.Context) {
	defer close(b.done)
	go b.seal(ctx)
	if b.clientQ != nil {
		go b.watchClients(ctx)
	}
	batch := make([]Event, 0, b.opts.MaxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch = batch[:0]
		select {
		case e := <-b.queue:
			batch = append(batch, e)
		case <-b.stop:
			b.drain(ctx, batch)
			return
		case <-ctx.Done():
			return
		}
		timer.Reset(b.opts.MaxDelay)
		select {
		case <-timer.C:
		case <-b.full:
		case <-b.stop:
		case <-ctx.Done():
			timer.Stop()
			return
		}
		timer.Stop()
		for {
		fill:
			for len(batch) < b.opts.MaxBatch {
				select {
				case e := <-b.queue:
					batch = append(batch, e)
				default:
					break fill
				}
			}
			b.write(ctx, batch)
			if len(batch) < b.opts.MaxBatch || ctx.Err() != nil {
				break
			}
			batch = batch[:0]
		}
	}
}

// write retries a batch until it is stored (or ctx ends): events taken from the queue are
// never dropped, and while it fails Enqueue starts refusing after the grace period.
func (b *Batcher) write(ctx context.Context, batch []Event) {
	backoff := 50 * time.Millisecond
	for {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := b.app.AppendEvents(wctx, batch...)
		cancel()
		if b.opts.OnWrite != nil {
			b.opts.OnWrite(len(batch), err)
		}
		if err == nil {
			b.failingSince.Store(0)
			return
		}
		b.failingSince.CompareAndSwap(0, b.opts.Now().UnixNano())
		b.opts.Logger.Error("audit batch write failed; retrying", "events", len(batch), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// drain writes what is queued, then the groups the sealer closed on Stop.
func (b *Batcher) drain(ctx context.Context, batch []Event) {
	select {
	case <-b.sealed:
	case <-ctx.Done():
		return
	}
	b.drainQueue(ctx, batch)
	pending := b.takePending()
	for len(pending) > 0 && ctx.Err() == nil {
		n := min(len(pending), b.opts.MaxBatch)
		b.write(ctx, pending[:n])
		pending = pending[n:]
	}
}

func (b *Batcher) drainQueue(ctx context.Context, batch []Event) {
	for {
		select {
		case e := <-b.queue:
			batch = append(batch, e)
			if len(batch) < b.opts.MaxBatch {
				continue
			}
		default:
		}
		if len(batch) == 0 {
			return
		}
		b.write(ctx, batch)
		batch = batch[:0]
		if len(b.queue) == 0 {
			return
		}
	}
}

// Stop asks Run to flush and return, and waits for it (bounded by ctx).
func (b *Batcher) Stop(ctx context.Context) {
	b.stopOnce.Do(func() { close(b.stop) })
	select {
	case <-b.done:
	case <-ctx.Done():
	}
}

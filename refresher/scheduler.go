package refresher

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/robfig/cron/v3"

	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// scheduler is the cron side of a Refresher.
type scheduler struct {
	mu       sync.Mutex
	cron     *cron.Cron
	cancel   context.CancelFunc
	sweeping atomic.Bool
	queue    atomic.Int64 // claimed, not yet finished
	webhooks *Webhooks
}

// WithWebhooks makes Start run the webhook dispatcher w on Config.WebhookSchedule.
func WithWebhooks(w *Webhooks) Option { return func(r *Refresher) { r.sched.webhooks = w } }

// Start runs the sweep on Config.Schedule (and the webhook dispatcher) until Stop or ctx
// ends. A sweep still running when the next is due is skipped, not stacked.
func (r *Refresher) Start(ctx context.Context) error {
	r.sched.mu.Lock()
	defer r.sched.mu.Unlock()
	if r.sched.cron != nil {
		return errors.New("refresher: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	c := cron.New()
	if r.cfg.Schedule != "" {
		if _, err := c.AddFunc(r.cfg.Schedule, func() { r.sweepOnce(ctx) }); err != nil {
			cancel()
			return err
		}
	}
	if w := r.sched.webhooks; w != nil && r.cfg.WebhookSchedule != "-" {
		var busy atomic.Bool
		if _, err := c.AddFunc(r.cfg.WebhookSchedule, func() {
			if busy.CompareAndSwap(false, true) {
				defer busy.Store(false)
				if _, err := w.Run(ctx); err != nil && ctx.Err() == nil {
					r.log.LogAttrs(ctx, slog.LevelWarn, "webhooks", slog.Any("err", err))
				}
			}
		}); err != nil {
			cancel()
			return err
		}
	}
	r.sched.cron, r.sched.cancel = c, cancel
	c.Start()
	return nil
}

// Stop stops the schedule and waits for a running sweep to finish (in-flight refreshes
// commit; claimed connections not yet started are released by their lease's expiry).
func (r *Refresher) Stop() {
	r.sched.mu.Lock()
	c, cancel := r.sched.cron, r.sched.cancel
	r.sched.cron = nil
	r.sched.mu.Unlock()
	if c == nil {
		return
	}
	cancel()
	<-c.Stop().Done()
}

// QueueDepth is the number of claimed connections the sweep has not finished (a gauge).
func (r *Refresher) QueueDepth() int { return int(r.sched.queue.Load()) }

// DueCount counts the connections due now (a gauge; an indexed count).
func (r *Refresher) DueCount(ctx context.Context) (int64, error) {
	return r.store.CountDue(ctx, r.now().Add(r.cfg.Lead))
}

func (r *Refresher) sweepOnce(ctx context.Context) {
	if !r.sched.sweeping.CompareAndSwap(false, true) {
		return
	}
	defer r.sched.sweeping.Store(false)
	st, err := r.Sweep(ctx)
	if err != nil && ctx.Err() == nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "refresh sweep", slog.Any("err", err))
	}
	if err == nil && r.metrics != nil {
		r.metrics.SweepCompleted(r.now())
	}
	if st.Claimed > 0 {
		r.log.LogAttrs(ctx, slog.LevelInfo, "refresh sweep", slog.Int("claimed", st.Claimed),
			slog.Int("refreshed", int(st.Refreshed)), slog.Int("failed", int(st.Failed)), slog.Int("checked", int(st.Checked)))
	}
}

// SweepStats counts one sweep's work.
type SweepStats struct {
	Claimed            int
	Refreshed, Failed  int64
	Checked, Discarded int64
}

// Sweep claims due connections in batches and works them off with Config.Workers workers
// until none is due: OAuth connections are refreshed, API-key connections health-checked.
func (r *Refresher) Sweep(ctx context.Context) (SweepStats, error) {
	var st SweepStats
	holder := r.holder()
	jobs := make(chan store.ConnectionCredential, r.cfg.Batch)
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cc := range jobs {
				r.work(ctx, holder, cc, &st)
				r.sched.queue.Add(-1)
			}
		}()
	}
	seen := map[string]bool{}
	var err error
	for ctx.Err() == nil {
		now := r.now()
		var batch []store.ConnectionCredential
		batch, err = r.store.ClaimDue(ctx, holder, now.Add(r.cfg.Lead), now, now.Add(r.cfg.LeaseTTL), r.cfg.Batch)
		if err != nil {
			break
		}
		fresh := 0
		for _, cc := range batch {
			if !seen[cc.ID] {
				seen[cc.ID] = true
				fresh++
			}
			st.Claimed++
			r.sched.queue.Add(1)
			jobs <- cc
		}
		if len(batch) < r.cfg.Batch || fresh == 0 {
			break // none left, or only connections this sweep has already worked on
		}
	}
	close(jobs)
	wg.Wait()
	if ctx.Err() == nil {
		r.notifyExpiring(ctx)
	}
	return st, err
}

func (r *Refresher) work(ctx context.Context, holder string, cc store.ConnectionCredential, st *SweepStats) {
	if oauthflow.AuthMode(cc.AuthMode).Typed() {
		r.checkHealth(ctx, holder, cc)
		atomic.AddInt64(&st.Checked, 1)
		return
	}
	res, retry := r.perform(ctx, store.Claim{Outcome: store.ClaimGranted, Row: cc}, holder)
	switch {
	case retry:
		_ = r.store.ReleaseRefresh(context.WithoutCancel(ctx), cc.ID, holder, nil, false, r.now())
		atomic.AddInt64(&st.Discarded, 1)
	case res.err != nil:
		atomic.AddInt64(&st.Failed, 1)
	default:
		atomic.AddInt64(&st.Refreshed, 1)
	}
}

package refresher

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/authpipe/authpipe-proxy/vault/store"
)

// committer groups refresh commits. With every connection of a workspace appending to
// one audit chain, commits of that workspace serialise on the chain head's row lock,
// held through each commit's WAL flush; the sweep's CPU sits idle behind it. So results
// that are ready at the same moment are committed together, in one transaction
// (store.CommitRefreshes: one fence per item, in connection id order, then one chain
// append).
//
// A worker hands its sealed commit to commit and waits for its own outcome. A committing
// goroutine takes the first pending commit and whatever else is already queued (up to
// store.MaxCommitGroup), without waiting for more, commits them as one group, answers
// each, and goes on until the queue is empty; then it ends. A commit that arrives while
// fewer than maxCommitters are running starts one, so a lone commit (an on-demand
// refresh) goes at once; past that, commits queue and form the next groups. Nothing runs
// while no commit is pending, so there is nothing to stop: Stop waits for the sweep's
// workers, every worker waits for its answer, and a worker whose ctx ends withdraws a
// commit not yet taken.
type committer struct {
	store Store
	max   int // committing goroutines at most: maxCommitters

	mu      sync.Mutex
	queue   []*pendingCommit
	running int // committing goroutines
}

// maxCommitters bounds the groups in flight at once: a few, so that one group's
// statements overlap another's chain append and WAL flush, while commits that arrive
// meanwhile still queue up into groups.
const maxCommitters = 4

type pendingCommit struct {
	ctx   context.Context
	rc    store.RefreshCommit
	taken bool // in a group (under committer.mu): its waiter waits for the outcome
	out   store.CommitOutcome
	done  chan struct{}
}

// commit commits rc, grouped with whatever else is pending, and returns its outcome once
// the transaction has ended: the connection as committed, or the error (store.ErrLeaseLost
// for a lost fence). A waiter whose ctx ends before its commit is taken withdraws it;
// once taken, it waits for the transaction, which goes on until every member's ctx ends.
func (c *committer) commit(ctx context.Context, rc store.RefreshCommit) (store.Connection, error) {
	if err := ctx.Err(); err != nil {
		return store.Connection{}, err
	}
	p := &pendingCommit{ctx: ctx, rc: rc, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	if c.running < c.max {
		c.running++
		go c.run()
	}
	c.mu.Unlock()
	select {
	case <-p.done:
	case <-ctx.Done():
		c.mu.Lock()
		if !p.taken {
			if i := slices.Index(c.queue, p); i >= 0 {
				c.queue = slices.Delete(c.queue, i, i+1)
			}
			c.mu.Unlock()
			return store.Connection{}, ctx.Err()
		}
		c.mu.Unlock()
		<-p.done
	}
	return p.out.Conn, p.out.Err
}

// run commits groups until the queue is empty.
func (c *committer) run() {
	for {
		c.mu.Lock()
		n := min(len(c.queue), store.MaxCommitGroup)
		if n == 0 {
			c.running--
			c.mu.Unlock()
			return
		}
		group := make([]*pendingCommit, n)
		copy(group, c.queue)
		for _, p := range group {
			p.taken = true
		}
		c.queue = slices.Delete(c.queue, 0, n)
		c.mu.Unlock()
		c.commitGroup(group)
		for _, p := range group {
			close(p.done)
		}
	}
}

// commitGroup commits group in one transaction and records each member's outcome. A group
// that fails as a whole with an error other than the database being unavailable (which
// the members retry with backoff) or the members' contexts ending is committed again
// member by member, so one member's hard error cannot cost the others their results.
func (c *committer) commitGroup(group []*pendingCommit) {
	ctx, done := groupContext(group)
	defer done()
	rcs := make([]store.RefreshCommit, len(group))
	for i, p := range group {
		rcs[i] = p.rc
	}
	outs, err := c.store.CommitRefreshes(ctx, rcs)
	if err != nil && len(group) > 1 && !errors.Is(err, store.ErrUnavailable) && ctx.Err() == nil {
		outs = make([]store.CommitOutcome, len(group))
		for i, p := range group {
			o, err := c.store.CommitRefreshes(p.ctx, rcs[i:i+1])
			if err != nil {
				o = []store.CommitOutcome{{Err: err}}
			}
			outs[i] = o[0]
		}
	} else if err != nil {
		outs = make([]store.CommitOutcome, len(group))
		for i := range outs {
			outs[i].Err = err
		}
	}
	for i, p := range group {
		p.out = outs[i]
	}
}

// groupContext is the context of a group's transaction: the first member's values, ended
// only when every member's context has ended. A transaction on one member's context would
// let a cancelled sweep throw away an on-demand refresh's rotated tokens, committed with
// it.
func groupContext(group []*pendingCommit) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(group[0].ctx))
	var left atomic.Int64
	left.Store(int64(len(group)))
	stops := make([]func() bool, len(group))
	for i, p := range group {
		stops[i] = context.AfterFunc(p.ctx, func() {
			if left.Add(-1) == 0 {
				cancel(context.Cause(p.ctx))
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel(nil)
	}
}

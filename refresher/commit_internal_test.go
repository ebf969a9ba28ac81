package refresher

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/vault/store"
)

// heldCommits is a Store whose CommitRefreshes reports each group on entered and answers
// only when answer says what to do with it (nil: commit every item).
type heldCommits struct {
	Store   // nil: the committer calls CommitRefreshes only
	entered chan []string
	answer  chan func([]store.RefreshCommit) ([]store.CommitOutcome, error)
}

func newHeldCommits() *heldCommits {
	return &heldCommits{entered: make(chan []string, 16),
		answer: make(chan func([]store.RefreshCommit) ([]store.CommitOutcome, error), 16)}
}

func (h *heldCommits) CommitRefreshes(ctx context.Context, rcs []store.RefreshCommit) ([]store.CommitOutcome, error) {
	ids := make([]string, len(rcs))
	for i, rc := range rcs {
		ids[i] = rc.ConnectionID
	}
	h.entered <- ids
	select {
	case f := <-h.answer:
		if f != nil {
			return f(rcs)
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	outs := make([]store.CommitOutcome, len(rcs))
	for i, rc := range rcs {
		outs[i].Conn = store.Connection{ID: rc.ConnectionID, Version: rc.Version + 1}
	}
	return outs, nil
}

type commitResult struct {
	id   string
	conn store.Connection
	err  error
}

func startCommit(ctx context.Context, c *committer, id string, results chan<- commitResult) {
	go func() {
		conn, err := c.commit(ctx, store.RefreshCommit{ConnectionID: id, Version: 1})
		results <- commitResult{id, conn, err}
	}()
}

func (c *committer) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

func (c *committer) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running == 0 && len(c.queue) == 0
}

// (One committing goroutine at most, so that what queues is known.) A lone commit goes at
// once; commits that arrive while a transaction is in flight wait and go together in the
// next; a waiter whose context ends before its commit is taken withdraws it; when the
// queue is empty nothing is left running.
func TestCommitterGroupsWhatIsQueued(t *testing.T) {
	h := newHeldCommits()
	c := &committer{store: h, max: 1}
	results := make(chan commitResult, 8)
	startCommit(context.Background(), c, "c1", results)
	require.Equal(t, []string{"c1"}, <-h.entered, "alone, at once")

	gone, cancel := context.WithCancel(context.Background())
	startCommit(context.Background(), c, "c2", results)
	startCommit(gone, c, "c3", results)
	startCommit(context.Background(), c, "c4", results)
	require.Eventually(t, func() bool { return c.queued() == 3 }, 5*time.Second, time.Millisecond)
	cancel()
	r := <-results
	require.Equal(t, "c3", r.id)
	require.ErrorIs(t, r.err, context.Canceled, "withdrawn before it was taken")
	require.Equal(t, 2, c.queued())

	h.answer <- nil
	r = <-results
	require.Equal(t, "c1", r.id)
	require.NoError(t, r.err)
	require.EqualValues(t, 2, r.conn.Version)
	group := <-h.entered
	slices.Sort(group)
	require.Equal(t, []string{"c2", "c4"}, group, "the queued commits, together")
	h.answer <- nil
	for range 2 {
		r = <-results
		require.NoError(t, r.err)
		require.Equal(t, r.id, r.conn.ID, "each waiter gets its own outcome")
	}
	require.Eventually(t, c.idle, 5*time.Second, time.Millisecond)
}

// A group's transaction outlives a member whose context ends (the others' results must
// not be thrown away with it); the member waits for the outcome. It ends when every
// member's context has.
func TestCommitterGroupOutlivesOneMembersContext(t *testing.T) {
	h := newHeldCommits()
	c := &committer{store: h, max: 1}
	results := make(chan commitResult, 8)
	startCommit(context.Background(), c, "c1", results)
	<-h.entered
	ctxA, cancelA := context.WithCancel(context.Background())
	ctxB, cancelB := context.WithCancel(context.Background())
	startCommit(ctxA, c, "a", results)
	startCommit(ctxB, c, "b", results)
	require.Eventually(t, func() bool { return c.queued() == 2 }, 5*time.Second, time.Millisecond)
	h.answer <- nil
	<-results // c1
	<-h.entered
	cancelA()
	select {
	case r := <-results:
		t.Fatalf("%s answered before its transaction ended: %v", r.id, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	h.answer <- nil
	for range 2 {
		r := <-results
		require.NoError(t, r.err, r.id)
	}

	cancelB()

	// Both members' contexts end: the transaction is cancelled, and both get the error.
	ctxA, cancelA = context.WithCancel(context.Background())
	ctxB, cancelB = context.WithCancel(context.Background())
	startCommit(context.Background(), c, "c2", results)
	<-h.entered
	startCommit(ctxA, c, "a", results)
	startCommit(ctxB, c, "b", results)
	require.Eventually(t, func() bool { return c.queued() == 2 }, 5*time.Second, time.Millisecond)
	h.answer <- nil
	<-results // c2
	<-h.entered
	cancelA()
	cancelB()
	for range 2 {
		require.ErrorIs(t, (<-results).err, context.Canceled)
	}
	require.Eventually(t, c.idle, 5*time.Second, time.Millisecond)
}

// A group that fails as a whole with a hard error is committed again member by member:
// only the member that causes it fails. An unavailable database is every member's error
// (they retry with backoff), not a reason to split the group.
func TestCommitterSplitsAGroupOnAHardError(t *testing.T) {
	h := newHeldCommits()
	c := &committer{store: h, max: 1}
	results := make(chan commitResult, 8)
	startCommit(context.Background(), c, "c1", results)
	<-h.entered
	for _, id := range []string{"ok1", "bad", "ok2"} {
		startCommit(context.Background(), c, id, results)
	}
	require.Eventually(t, func() bool { return c.queued() == 3 }, 5*time.Second, time.Millisecond)
	boom := errors.New("boom")
	failIfBad := func(rcs []store.RefreshCommit) ([]store.CommitOutcome, error) {
		outs := make([]store.CommitOutcome, len(rcs))
		for i, rc := range rcs {
			if rc.ConnectionID == "bad" {
				for i := range outs {
					outs[i].Err = boom
				}
				return outs, boom
			}
			outs[i].Conn.ID = rc.ConnectionID
		}
		return outs, nil
	}
	h.answer <- nil
	<-results // c1
	require.Len(t, <-h.entered, 3)
	h.answer <- failIfBad
	for range 3 {
		require.Len(t, <-h.entered, 1, "alone")
		h.answer <- failIfBad
	}
	for range 3 {
		r := <-results
		if r.id == "bad" {
			require.ErrorIs(t, r.err, boom)
		} else {
			require.NoError(t, r.err)
			require.Equal(t, r.id, r.conn.ID)
		}
	}

	startCommit(context.Background(), c, "c2", results)
	<-h.entered
	for _, id := range []string{"x", "y"} {
		startCommit(context.Background(), c, id, results)
	}
	require.Eventually(t, func() bool { return c.queued() == 2 }, 5*time.Second, time.Millisecond)
	h.answer <- nil
	<-results
	require.Len(t, <-h.entered, 2)
	h.answer <- func(rcs []store.RefreshCommit) ([]store.CommitOutcome, error) {
		return nil, store.ErrUnavailable
	}
	for range 2 {
		require.ErrorIs(t, (<-results).err, store.ErrUnavailable)
	}
	require.Eventually(t, c.idle, 5*time.Second, time.Millisecond)
}

// Up to max groups are in flight at once; a commit arriving past that queues.
func TestCommitterRunsUpToMaxGroups(t *testing.T) {
	h := newHeldCommits()
	c := &committer{store: h, max: 2}
	results := make(chan commitResult, 8)
	startCommit(context.Background(), c, "c1", results)
	require.Equal(t, []string{"c1"}, <-h.entered)
	startCommit(context.Background(), c, "c2", results)
	require.Equal(t, []string{"c2"}, <-h.entered, "a second group while the first is in flight")
	startCommit(context.Background(), c, "c3", results)
	require.Eventually(t, func() bool { return c.queued() == 1 }, 5*time.Second, time.Millisecond)
	h.answer <- nil
	require.Equal(t, []string{"c3"}, <-h.entered, "taken by the first committer free")
	h.answer <- nil
	h.answer <- nil
	for range 3 {
		require.NoError(t, (<-results).err)
	}
	require.Eventually(t, c.idle, 5*time.Second, time.Millisecond)
}

// Package health runs dependency checks (a database ping, a KMS round trip) for readiness
// in the background, each under its own deadline and at most once per interval, and
// reports their latest results without ever waiting longer than its caller allows. A
// probe that is called often (Kubernetes, a load balancer, an attacker: /readyz needs no
// key) therefore costs the dependency at most one call per check and interval.
package health

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrPending is the result of a check that has not finished yet.
var ErrPending = errors.New("health: check pending")

// ErrOverdue is the result of a check still running past its own deadline (a probe that
// ignores its context).
var ErrOverdue = errors.New("health: check overdue")

// Check is one dependency check.
type Check struct {
	// Name identifies the check in Status; checks of one name report together.
	Name string
	// Probe reports whether the dependency can be used; it gets a context that ends
	// after Timeout.
	Probe func(context.Context) error
	// Every is the least time between the starts of two runs of Probe.
	Every time.Duration
	// Timeout is the deadline of one run.
	Timeout time.Duration
}

// Checker runs its checks on demand: Status starts a check whose last run started Every
// or more ago, in its own goroutine, and reports the latest finished result.
type Checker struct {
	checks []*check
}

type check struct {
	Check
	mu      sync.Mutex
	running bool
	started time.Time     // start of the latest run (zero: never run)
	done    chan struct{} // closed when the latest run ends
	have    bool          // a run has finished
	err     error         // the result of the latest finished run
}

// New returns a checker of these checks. It starts nothing.
func New(checks ...Check) *Checker {
	c := &Checker{}
	for _, ch := range checks {
		c.checks = append(c.checks, &check{Check: ch})
	}
	return c
}

// Status returns the result of every check by name (nil: healthy; for several checks of
// one name, the first failure). Checks due to run are
// started; Status waits up to wait for the ones running to finish, and otherwise reports
// the previous result (ErrPending before the first, ErrOverdue for a run past its
// deadline). It never blocks longer than wait.
func (c *Checker) Status(wait time.Duration) map[string]error {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	waits := make([]chan struct{}, len(c.checks))
	for i, ch := range c.checks {
		waits[i] = ch.start()
	}
	for _, done := range waits {
		if done == nil {
			continue
		}
		select {
		case <-done:
		case <-timer.C:
			timer.Reset(0) // the budget is spent: later checks report what they have
		}
	}
	out := make(map[string]error, len(c.checks))
	for _, ch := range c.checks {
		if out[ch.Name] == nil {
			out[ch.Name] = ch.result()
		}
	}
	return out
}

// start runs the probe if it is due and returns the channel of the run in flight (nil if
// none).
func (ch *check) start() chan struct{} {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if !ch.running && (ch.started.IsZero() || time.Since(ch.started) >= ch.Every) {
		ch.running, ch.started, ch.done = true, time.Now(), make(chan struct{})
		go ch.run(ch.done)
	}
	if ch.running {
		return ch.done
	}
	return nil
}

func (ch *check) run(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), ch.Timeout)
	err := ch.Probe(ctx)
	cancel()
	ch.mu.Lock()
	ch.running, ch.have, ch.err = false, true, err
	ch.mu.Unlock()
	close(done)
}

func (ch *check) result() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	switch {
	case ch.running && time.Since(ch.started) > ch.Timeout:
		return ErrOverdue
	case !ch.have:
		return ErrPending
	default:
		return ch.err
	}
}

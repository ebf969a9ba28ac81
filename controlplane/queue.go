package controlplane

import (
	"context"
	"encoding/json"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/ids"
)

// Emitter is what the rest of the data plane calls to report metadata. Emit never
// blocks and never fails the caller: an event that cannot be queued is dropped and
// counted.
type Emitter interface {
	Emit(ctx context.Context, e Event)
}

var _ Emitter = (*Client)(nil)

// Emit fills in e's ID and At when they are empty, checks e against the boundary rules
// (Event.Validate) and hands it to the queue. It does not wait for the database or the
// network: a full buffer or an invalid event drops the event, counts it and logs its
// type (never its content).
func (c *Client) Emit(_ context.Context, e Event) {
	if e.ID == "" {
		e.ID = "cpe_" + ids.Random(16)
	}
	if e.At.IsZero() {
		e.At = c.o.now().UTC()
	}
	if err := e.Validate(); err != nil {
		c.invalid.Add(1)
		c.o.log.Error("controlplane: event refused at the boundary", "type", string(e.Type), "err", err)
		return
	}
	select {
	case c.buf <- e:
	default:
		c.dropped.Add(1)
		c.o.log.Warn("controlplane: event buffer full; event dropped", "type", string(e.Type))
	}
}

// Dropped is the number of events dropped since start: buffer full, outbox over its
// bound, or refused by the control plane as malformed.
func (c *Client) Dropped() int64 { return c.dropped.Load() }

// Invalid is the number of events refused by Event.Validate since start.
func (c *Client) Invalid() int64 { return c.invalid.Load() }

// writeLoop moves buffered events into the database outbox in batches. On shutdown it
// writes what is left in the buffer with a short deadline of its own.
func (c *Client) writeLoop(ctx context.Context) {
	var pending []string
	delay := c.o.backoffMin
	for {
		select {
		case <-ctx.Done():
			pending = c.drain(pending)
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := c.enqueue(fctx, pending); err != nil {
				c.o.log.Warn("controlplane: events lost at shutdown", "count", len(pending), "err", err)
			}
			cancel()
			return
		case e := <-c.buf:
			pending = c.drain(append(pending, c.marshal(e)...))
		}
		for len(pending) > 0 {
			if err := c.enqueue(ctx, pending); err != nil {
				c.o.log.Warn("controlplane: cannot write the outbox; retrying", "err", err, "retry_in", delay.String())
				select {
				case <-ctx.Done():
				case <-time.After(jitter(delay)):
				}
				delay = min(delay*2, c.o.backoffMax)
				if ctx.Err() != nil {
					break
				}
				continue
			}
			pending, delay = pending[:0], c.o.backoffMin
			c.kick()
		}
	}
}

// drain takes whatever else is buffered, without waiting, up to a batch of 1000.
func (c *Client) drain(pending []string) []string {
	for len(pending) < 1000 {
		select {
		case e := <-c.buf:
			pending = append(pending, c.marshal(e)...)
		default:
			return pending
		}
	}
	return pending
}

func (c *Client) marshal(e Event) []string {
	b, err := json.Marshal(e)
	if err != nil { // cannot happen for this type; never drop silently
		c.invalid.Add(1)
		return nil
	}
	return []string{string(b)}
}

func (c *Client) enqueue(ctx context.Context, payloads []string) error {
	if len(payloads) == 0 {
		return nil
	}
	dropped, err := c.store.EnqueueOutbox(ctx, payloads, c.o.queueLimit)
	if err != nil {
		return err
	}
	if dropped > 0 {
		c.dropped.Add(dropped)
		c.o.log.Warn("controlplane: outbox over its bound; oldest events dropped", "dropped", dropped,
			"limit", c.o.queueLimit, "dropped_total", c.dropped.Load())
	}
	return nil
}

// kick wakes the sender without blocking.
func (c *Client) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

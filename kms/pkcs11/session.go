//go:build cgo

package pkcs11

import (
	"context"
	"fmt"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/authpipe/authpipe-proxy/kms"
)

// sessionPool bounds and reuses the PKCS#11 sessions of one Backend. A session runs one
// operation at a time, so each Wrap or Unwrap borrows one. At most max operations run at
// once (the rest wait, honouring ctx); up to max idle sessions are kept for reuse. All
// sessions of the application share the token's login, so none of them logs in.
type sessionPool struct {
	ctx  *p11.Ctx
	slot uint

	sem  chan struct{}          // one token per running operation
	idle chan p11.SessionHandle // sessions ready for reuse
	done chan struct{}          // closed by close
	once sync.Once
}

func newSessionPool(ctx *p11.Ctx, slot uint, max int) *sessionPool {
	return &sessionPool{
		ctx:  ctx,
		slot: slot,
		sem:  make(chan struct{}, max),
		idle: make(chan p11.SessionHandle, max),
		done: make(chan struct{}),
	}
}

var errClosed = fmt.Errorf("%w: pkcs11 backend is closed", kms.ErrUnavailable)

// get borrows a session; the caller must put it back.
func (p *sessionPool) get(ctx context.Context) (p11.SessionHandle, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("%w: pkcs11: %w", kms.ErrUnavailable, err)
	}
	select {
	case <-p.done:
		return 0, errClosed
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: pkcs11: waiting for a session: %w", kms.ErrUnavailable, ctx.Err())
	case p.sem <- struct{}{}:
	}
	select {
	case <-p.done: // close won the race; it waits for our token
		<-p.sem
		return 0, errClosed
	case s := <-p.idle:
		return s, nil
	default:
	}
	s, err := p.ctx.OpenSession(p.slot, p11.CKF_SERIAL_SESSION)
	if err != nil {
		<-p.sem
		return 0, opError("C_OpenSession", err)
	}
	return s, nil
}

// put returns a session. A session whose operation failed for a reason other than a
// refused tag is closed rather than reused: its state is unknown.
func (p *sessionPool) put(s p11.SessionHandle, reuse bool) {
	if reuse {
		select {
		case p.idle <- s:
			reuse = true
		default:
			reuse = false // the pool is full (sessions opened while others were returned)
		}
	}
	if !reuse {
		_ = p.ctx.CloseSession(s)
	}
	<-p.sem
}

// closed reports whether close has been called.
func (p *sessionPool) closed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// dropIdle closes the idle sessions (after an outage they are stale).
func (p *sessionPool) dropIdle() {
	for {
		select {
		case s := <-p.idle:
			_ = p.ctx.CloseSession(s)
		default:
			return
		}
	}
}

// close stops new operations, waits for the running ones and closes every idle session.
// PKCS#11 calls cannot be cancelled, so it waits as long as the device takes.
func (p *sessionPool) close() {
	p.once.Do(func() {
		close(p.done)
		for range cap(p.sem) {
			p.sem <- struct{}{}
		}
		p.dropIdle()
	})
}

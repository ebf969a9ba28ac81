package outbound

import (
	"fmt"
	"io"
	"net/http"
)

// ReadLimited reads all of r if it holds at most n bytes; beyond that it fails with an
// error wrapping ErrResponseTooLarge (and the data read so far is discarded, not
// returned half). Use it for every provider response body (x/oauth2 caps at 1 MiB too).
func ReadLimited(r io.Reader, n int64) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("outbound: ReadLimited: negative limit %d", n)
	}
	b, err := io.ReadAll(io.LimitReader(r, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > n {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrResponseTooLarge, n)
	}
	return b, nil
}

// capTransport enforces what must hold for every request through a Client: http or
// https only (https only when pinned), and a capped response body.
type capTransport struct {
	base      *http.Transport
	max       int64 // NoResponseLimit disables the cap
	httpsOnly bool
	report    func(Event)
}

func (t *capTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.URL.Scheme {
	case "https":
	case "http":
		if t.httpsOnly {
			closeBody(req)
			return nil, fmt.Errorf("%w: plain http where https is required (pins, a client certificate)", ErrUnsafeURL)
		}
	default:
		closeBody(req)
		return nil, fmt.Errorf("%w: scheme must be http or https", ErrUnsafeURL)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil || t.max == NoResponseLimit {
		return resp, err
	}
	if resp.ContentLength > t.max {
		_ = resp.Body.Close()
		t.report(Event{Kind: EventResponseTooLarge, Host: req.URL.Hostname(), Detail: "content-length"})
		return nil, fmt.Errorf("%w: content-length %d over %d", ErrResponseTooLarge, resp.ContentLength, t.max)
	}
	resp.Body = &capBody{rc: resp.Body, left: t.max, max: t.max, onExceed: func() {
		t.report(Event{Kind: EventResponseTooLarge, Host: req.URL.Hostname(), Detail: "body"})
	}}
	return resp, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the pool.
func (t *capTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// capBody returns the first max bytes, then ErrResponseTooLarge if more follow.
type capBody struct {
	rc       io.ReadCloser
	left     int64
	max      int64
	onExceed func()
	exceeded bool
}

func (b *capBody) Read(p []byte) (int, error) {
	if b.exceeded {
		return 0, b.tooLarge()
	}
	if b.left <= 0 {
		// Probe for one more byte to tell a body of exactly max bytes from a longer one.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			b.exceeded = true
			b.onExceed()
			return 0, b.tooLarge()
		}
		if err == nil {
			return 0, nil
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *capBody) tooLarge() error {
	return fmt.Errorf("%w: more than %d bytes", ErrResponseTooLarge, b.max)
}

func (b *capBody) Close() error { return b.rc.Close() }

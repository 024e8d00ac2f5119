package relay

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// idleTimeout fails the body read of an upstream response when no byte
// arrives for d: the read returns an error, so ReverseProxy cuts the
// client's connection (never a short body presented as complete) and a
// cache fill is discarded. Only time spent waiting on the upstream counts,
// not time the relay spends writing to a slow client. Response headers
// have their own timeout (the Transport's ResponseHeaderTimeout).
type idleTimeout struct {
	next http.RoundTripper
	d    time.Duration
}

var _ http.RoundTripper = (*idleTimeout)(nil)

// withIdleTimeout wraps next; d <= 0 switches the timeout off.
func withIdleTimeout(next http.RoundTripper, d time.Duration) http.RoundTripper {
	if d <= 0 {
		return next
	}
	return &idleTimeout{next: next, d: d}
}

func (t *idleTimeout) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel(nil)
		return nil, err
	}
	b := &idleBody{body: resp.Body, d: t.d, cancel: cancel}
	b.timer = time.AfterFunc(time.Hour, b.expire)
	b.timer.Stop()
	resp.Body = b
	return resp, nil
}

// CloseIdleConnections lets closeIdle reach the transport below.
func (t *idleTimeout) CloseIdleConnections() { closeIdle(t.next) }

// idleError is the error a stalled upstream body read fails with; a
// net.Error timeout, as a read deadline's would be.
type idleError struct{ after time.Duration }

func (e *idleError) Error() string   { return fmt.Sprintf("upstream sent no data for %s", e.after) }
func (e *idleError) Timeout() bool   { return true }
func (e *idleError) Temporary() bool { return false }

type idleBody struct {
	body   io.ReadCloser
	d      time.Duration
	timer  *time.Timer
	cancel context.CancelCauseFunc
	fired  atomic.Bool
}

func (b *idleBody) expire() {
	b.fired.Store(true)
	// Cancelling the request makes the transport abort the read that is
	// blocked on the connection.
	b.cancel(&idleError{after: b.d})
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.fired.Load() {
		return 0, &idleError{after: b.d}
	}
	b.timer.Reset(b.d)
	n, err := b.body.Read(p)
	b.timer.Stop()
	if b.fired.Load() {
		return n, &idleError{after: b.d}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.body.Close()
	b.cancel(context.Canceled)
	return err
}

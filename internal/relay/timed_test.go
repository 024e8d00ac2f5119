package relay_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// exchangeDeadline bounds one request to the relay, body included, so
// that a test whose check was removed fails instead of waiting for the
// global go test timeout.
const exchangeDeadline = 30 * time.Second

// callWithin is call with its own deadline and an optional body; it
// never follows redirects.
func callWithin(t *testing.T, srv *httptest.Server, method, host, path string, hdr http.Header, body io.Reader) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), exchangeDeadline)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header[k] = v
	}
	client := &http.Client{
		Transport:     srv.Client().Transport,
		Timeout:       exchangeDeadline,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	return resp
}

// seenRequest is what an upstream received, body included (read inside
// the handler, while it can still be read).
type seenRequest struct {
	Method           string
	URI              string
	Header           http.Header
	Body             []byte
	ContentLength    int64
	TransferEncoding []string
}

// recordingUpstream records every request it receives and answers with h.
type recordingUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

func newRecordingUpstream(t *testing.T, h http.HandlerFunc) *recordingUpstream {
	t.Helper()
	u := &recordingUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{Method: r.Method, URI: r.URL.RequestURI(), Header: r.Header.Clone(),
			Body: body, ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding})
		u.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *recordingUpstream) URL() string { return u.srv.URL }

// count is how many requests the upstream has received.
func (u *recordingUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

// last is the latest request the upstream received.
func (u *recordingUpstream) last(t *testing.T) seenRequest {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		t.Fatal("the upstream received no request")
	}
	return u.seen[len(u.seen)-1]
}

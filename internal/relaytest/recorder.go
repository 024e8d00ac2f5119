package relaytest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Recorder is a loopback HTTP server that writes down every request it
// receives before answering it, for tests that play a hostile upstream, a
// CDN or a canary: what the relay sent (and whether it sent anything at
// all) is the assertion, not only what the client got back.
type Recorder struct {
	URL  string // http://127.0.0.1:PORT
	Host string // 127.0.0.1:PORT

	srv     *httptest.Server
	handler http.HandlerFunc
	mu      sync.Mutex
	seen    []Recorded
}

// Recorded is one request a Recorder received.
type Recorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte // the first 64 KiB
	// ContentLength and TransferEncoding are as the request declared
	// them, for tests that no body was relayed.
	ContentLength    int64
	TransferEncoding []string
}

// NewRecorder serves handler (nil: 200 with the body "canary") on
// loopback until the test ends.
func NewRecorder(t testing.TB, handler http.HandlerFunc) *Recorder {
	t.Helper()
	if handler == nil {
		handler = func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "canary") }
	}
	rec := &Recorder{handler: handler}
	rec.srv = httptest.NewServer(http.HandlerFunc(rec.serve))
	rec.URL, rec.Host = rec.srv.URL, rec.srv.Listener.Addr().String()
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *Recorder) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	rec.mu.Lock()
	rec.seen = append(rec.seen, Recorded{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body,
		ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding})
	rec.mu.Unlock()
	rec.handler(w, r)
}

// Requests returns what the server has received so far.
func (rec *Recorder) Requests() []Recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]Recorded(nil), rec.seen...)
}

// Last is the latest request received; a test that expected one and got
// none fails.
func (rec *Recorder) Last(t testing.TB) Recorded {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) == 0 {
		t.Fatal("relaytest: the server received no request")
	}
	return rec.seen[len(rec.seen)-1]
}

// Count is the number of requests received so far.
func (rec *Recorder) Count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.seen)
}

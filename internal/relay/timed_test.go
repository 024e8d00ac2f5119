package relay_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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

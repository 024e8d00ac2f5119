package relay_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/registry-relay/registry-relay/internal/app"
	"github.com/registry-relay/registry-relay/internal/config"
	"github.com/registry-relay/registry-relay/internal/metrics"
	"github.com/registry-relay/registry-relay/internal/registry"
	"github.com/registry-relay/registry-relay/internal/relay"
)

// fakePublic answers for made-up public hosts (registry.example and the
// like) from a table and sends every other request through the relay's
// real transport, recording every host it is asked to reach.
type fakePublic struct {
	answer func(*http.Request) *http.Response
	real   http.RoundTripper
	mu     sync.Mutex
	hosts  []string
}

func (f *fakePublic) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.hosts = append(f.hosts, req.URL.Host)
	f.mu.Unlock()
	if strings.HasSuffix(req.URL.Hostname(), ".example") {
		resp := f.answer(req)
		resp.Request = req
		return resp, nil
	}
	return f.real.RoundTrip(req)
}

func (f *fakePublic) reached(host string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.hosts {
		if h == host {
			return true
		}
	}
	return false
}

// publicRelay serves a relay whose one route reaches its upstream through
// f, which plays the internet; passBlobs is RELAY_PASS_BLOB_REDIRECTS.
func publicRelay(t *testing.T, route *registry.Route, f *fakePublic, passBlobs bool) *httptest.Server {
	t.Helper()
	cfg, err := config.Load(map[string]string{"RELAY_BASE_DOMAIN": "test"})
	if err != nil {
		t.Fatal(err)
	}
	real := app.NewTransport(cfg)
	f.real = real
	rl := relay.New(relay.Options{
		Routes:            registry.NewTable([]*registry.Route{route}),
		Metrics:           metrics.New(),
		Log:               slog.New(slog.DiscardHandler),
		Transport:         f,
		MaxRedirects:      5,
		PassBlobRedirects: passBlobs,
	})
	srv := httptest.NewServer(rl)
	t.Cleanup(func() {
		srv.Close()
		rl.CloseIdleConnections()
		real.CloseIdleConnections()
	})
	return srv
}

// redirectTo answers every request with a 307 to location.
func redirectTo(location string) func(*http.Request) *http.Response {
	return func(*http.Request) *http.Response {
		return &http.Response{StatusCode: http.StatusTemporaryRedirect, Header: http.Header{"Location": {location}}, Body: http.NoBody}
	}
}

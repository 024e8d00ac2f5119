package relay_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/registry-relay/registry-relay/internal/access"
	"github.com/registry-relay/registry-relay/internal/metrics"
	"github.com/registry-relay/registry-relay/internal/registry"
	"github.com/registry-relay/registry-relay/internal/relay"
)

// TestRouteWithoutPolicyFailsClosed: the route table is plain data and the
// relay is handed the policies separately; a route the policies do not
// name is refused everything rather than let through, and the upstream is
// never asked.
func TestRouteWithoutPolicyFailsClosed(t *testing.T) {
	up, last := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	u, _ := url.Parse(up.URL)
	listed := &registry.Route{Name: "listed", AccessDomain: "listed.test", Upstream: u}
	forgotten := &registry.Route{Name: "forgotten", AccessDomain: "forgotten.test", Upstream: u}
	rl := relay.New(relay.Options{
		Routes:    registry.NewTable([]*registry.Route{listed, forgotten}),
		Metrics:   metrics.New(),
		Log:       slog.New(slog.DiscardHandler),
		Policies:  map[string]access.RoutePolicy{"listed": {}},
		Transport: http.DefaultTransport,
	})
	srv := httptest.NewServer(rl)
	t.Cleanup(func() {
		srv.Close()
		rl.CloseIdleConnections()
	})
	wantOCIError(t, call(t, srv, http.MethodGet, "forgotten.test", "/v2/x/manifests/latest", nil), http.StatusForbidden, "DENIED")
	if got := last.Load(); got != nil {
		t.Fatalf("the upstream was asked for %s", got.URL)
	}
	if resp := call(t, srv, http.MethodGet, "listed.test", "/v2/x/manifests/latest", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("a route with a policy: %d", resp.StatusCode)
	}
}

// TestMirrorRequestsCountForTheirRoute: a request on the mirror host is
// counted, in flight and when done, under the route it resolved to, so
// the gauge and the counters agree.
func TestMirrorRequestsCountForTheirRoute(t *testing.T) {
	release := make(chan struct{})
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-release
	})
	relay, a := startRelay(t, hubEnv(up.URL))
	resp := call(t, relay, http.MethodGet, "mirror.test", "/v2/library/x/blobs/"+digestA, nil)
	if !scrapeHas(t, a.Gatherer(), `relay_inflight_requests{route="dockerhub"} 1`) {
		t.Errorf("a mirror-host transfer in flight is not counted for its route:\n%s", scrape(t, a.Gatherer()))
	}
	close(release)
	readAll(t, resp)
	if !scrapeHas(t, a.Gatherer(), `relay_inflight_requests{route="dockerhub"} 0`) ||
		!scrapeHas(t, a.Gatherer(), `relay_http_requests_total{code="200",kind="blob",method="GET",route="dockerhub"} 1`) {
		t.Errorf("after the transfer:\n%s", scrape(t, a.Gatherer()))
	}
}

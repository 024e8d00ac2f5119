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

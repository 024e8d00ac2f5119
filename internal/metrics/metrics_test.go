package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func scrape(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, string(body)
}

func TestAdminHandler(t *testing.T) {
	m := New()
	reg := prometheus.NewRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	m.SetRoutes([]RouteInfo{{Name: "dockerhub", AccessDomain: "dhcr.example.com", UpstreamHost: "registry-1.docker.io"}})
	end := m.Begin("dockerhub")
	m.Observe("dockerhub", "blob", "BREW", 200, 1234, 12.5)
	m.Upstream("dockerhub", 0)
	var ready atomic.Bool
	h := AdminHandler(reg, &ready)

	if code, _ := scrape(t, h, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before start = %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := scrape(t, h, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz when ready = %d, want 200", code)
	}
	if code, _ := scrape(t, h, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	_, body := scrape(t, h, "/metrics")
	for _, want := range []string{
		`relay_route_info{host="dhcr.example.com",route="dockerhub",upstream="registry-1.docker.io"} 1`,
		`relay_http_requests_total{code="200",kind="blob",method="other",route="dockerhub"} 1`,
		`relay_bytes_sent_total{route="dockerhub"} 1234`,
		`relay_upstream_requests_total{code="error",route="dockerhub"} 1`,
		`relay_inflight_requests{route="dockerhub"} 1`,
		`relay_http_request_duration_seconds_bucket{kind="blob",route="dockerhub",le="30"} 1`,
		`relay_http_request_duration_seconds_bucket{kind="blob",route="dockerhub",le="300"} 1`,
		"go_goroutines", "process_",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	end()
	if _, body = scrape(t, h, "/metrics"); !strings.Contains(body, `relay_inflight_requests{route="dockerhub"} 0`) {
		t.Error("in-flight gauge did not return to 0")
	}
}

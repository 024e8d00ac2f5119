package relay_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/goleak"

	"github.com/registry-relay/registry-relay/internal/app"
	"github.com/registry-relay/registry-relay/internal/config"
	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// TestMain fails the package if streams leave goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, relaytest.IgnoreRegistryGoroutines())
}

// startRelay serves a relay configured by environ on loopback.
func startRelay(t *testing.T, environ map[string]string) (*httptest.Server, *app.App) {
	t.Helper()
	return startRelayAt(t, environ, nil)
}

// startRelayAt is startRelay on a clock the test moves (nil: the wall
// clock), for lifetimes: tokens, tag resolutions, authorization decisions.
func startRelayAt(t *testing.T, environ map[string]string, now func() time.Time) (*httptest.Server, *app.App) {
	t.Helper()
	cfg, err := config.Load(environ)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.Clock = now
	a, err := app.New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		a.CloseIdleConnections()
	})
	return srv, a
}

// hubEnv configures the Docker Hub route (dhcr.test) against upstream,
// whose token service may live on authHosts.
func hubEnv(upstream string, authHosts ...string) map[string]string {
	env := map[string]string{"RELAY_BASE_DOMAIN": "test", "DOCKERHUB_UPSTREAM": upstream}
	if len(authHosts) > 0 {
		env["DOCKERHUB_AUTH_HOSTS"] = strings.Join(authHosts, ",")
	}
	return env
}

// hostOf is a server URL's host:port, for _AUTH_HOSTS.
func hostOf(rawURL string) string {
	return strings.TrimPrefix(strings.TrimPrefix(rawURL, "http://"), "https://")
}

// call sends one request to the relay as if addressed to host, within
// its own deadline (callWithin).
func call(t *testing.T, srv *httptest.Server, method, host, path string, hdr http.Header) *http.Response {
	t.Helper()
	return callWithin(t, srv, method, host, path, hdr, nil)
}

type ociErrors struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// wantOCIError asserts status and the first error code of a JSON envelope.
func wantOCIError(t *testing.T, resp *http.Response, status int, code string) string {
	t.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d (%d body bytes: %.200q)", resp.StatusCode, status, len(body), body)
	}
	var e ociErrors
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("body is not an OCI error envelope: %.200q", body)
	}
	if e.Errors[0].Code != code {
		t.Fatalf("code = %s, want %s (%s)", e.Errors[0].Code, code, e.Errors[0].Message)
	}
	return e.Errors[0].Message
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, resp.Body); err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return buf.Bytes()
}

// scrape renders g in the Prometheus text format.
func scrape(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(g, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// scrapeHas reports whether the exposition contains text, retrying briefly:
// the access-log middleware records a request only after its response.
func scrapeHas(t *testing.T, g prometheus.Gatherer, text string) bool {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(scrape(t, g), text) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

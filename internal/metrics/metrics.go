// Package metrics defines registry-relay's Prometheus collectors and the
// admin listener's handler (/metrics, /healthz, /readyz).
package metrics

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Route labels that are not route names.
const (
	// NoRoute labels requests whose Host matched no route.
	NoRoute = "none"
	// MirrorRoute labels in-flight requests on the mirror host; once
	// resolved, they are counted under the route they reached.
	MirrorRoute = "mirror"
)

// durationBuckets reach five minutes: a multi-GB layer through a slow link
// is one request.
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// Metrics holds the relay's collectors. Labels come from small fixed sets:
// route names, path kinds, methods and status codes, never hosts or paths.
type Metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	upstream  *prometheus.CounterVec
	bytesSent *prometheus.CounterVec
	inflight  *prometheus.GaugeVec
	routeInfo *prometheus.GaugeVec
	fallback  *prometheus.CounterVec
	rateLimit *prometheus.GaugeVec

	denied *prometheus.CounterVec
	limits *prometheus.GaugeVec

	cacheRequests        *prometheus.CounterVec
	cachePublishFailures prometheus.Counter
	cacheEvictions       prometheus.Counter
	upstreamBytes        *prometheus.CounterVec
	cacheSize            atomic.Pointer[func() int64]
}

// New creates the collectors; nothing is registered until Register.
func New() *Metrics {
	return &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_http_requests_total", Help: "Requests served, by route, path kind, method and status code.",
		}, []string{"route", "kind", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "relay_http_request_duration_seconds", Help: "Time from request to the last byte of the response.",
			Buckets: durationBuckets,
		}, []string{"route", "kind"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_upstream_requests_total", Help: "Requests sent to upstream registries and token services, by status code (\"error\" when none came back).",
		}, []string{"route", "code"}),
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_bytes_sent_total", Help: "Response body bytes sent to clients.",
		}, []string{"route"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relay_inflight_requests", Help: "Requests being served right now.",
		}, []string{"route"}),
		fallback: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_fallback_total", Help: "Requests retried on the route's fallback upstream, by why the primary failed (error, timeout, 5xx, 429).",
		}, []string{"route", "reason"}),
		rateLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relay_upstream_ratelimit_remaining", Help: "Last RateLimit-Remaining an upstream reported (Docker Hub's pull quota left).",
		}, []string{"route"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_access_denied_total", Help: "Requests refused before any upstream request, by reason: rate, transfers, client_ip, repository, unauthenticated.",
		}, []string{"route", "reason"}),
		limits: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relay_limit", Help: "Configured per-client-IP limits (0: off): rate_per_second, burst, transfers.",
		}, []string{"limit"}),
		cacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_cache_requests_total", Help: "Requests the cache answered, by result: hit, miss (this request fetched), coalesced (joined another's fetch), stale (served after an upstream failure).",
		}, []string{"route", "kind", "result"}),
		cacheEvictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_cache_evictions_total", Help: "Cache entries evicted to stay under RELAY_CACHE_MAX_BYTES.",
		}),
		cachePublishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_cache_publish_failures_total", Help: "Verified content the cache could not store (store full, slow or down); its clients were served all the same.",
		}),
		upstreamBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_upstream_bytes_total", Help: "Response body bytes read from upstreams.",
		}, []string{"route"}),
		routeInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relay_route_info", Help: "Always 1; ties each route name to its access domain and upstream, for joins.",
		}, []string{"route", "host", "upstream"}),
	}
}

// Register adds the collectors, plus Go and process collectors, to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	return errors.Join(
		reg.Register(m.requests), reg.Register(m.duration), reg.Register(m.upstream),
		reg.Register(m.bytesSent), reg.Register(m.inflight), reg.Register(m.routeInfo),
		reg.Register(m.fallback), reg.Register(m.rateLimit),
		reg.Register(m.denied), reg.Register(m.limits),
		reg.Register(m.cacheRequests), reg.Register(m.cacheEvictions), reg.Register(m.cachePublishFailures), reg.Register(m.upstreamBytes),
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "relay_cache_bytes", Help: "Bytes of content in the cache.",
		}, func() float64 {
			if f := m.cacheSize.Load(); f != nil {
				return float64((*f)())
			}
			return 0
		})),
		reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
	)
}

// RouteInfo is what relay_route_info says of one route.
type RouteInfo struct {
	Name         string
	AccessDomain string // empty for a route reached only through the mirror host
	UpstreamHost string
}

// SetRoutes publishes relay_route_info for the configured routes.
func (m *Metrics) SetRoutes(routes []RouteInfo) {
	m.routeInfo.Reset()
	for _, r := range routes {
		host := r.AccessDomain
		if host == "" {
			host = MirrorRoute
		}
		m.routeInfo.WithLabelValues(r.Name, host, r.UpstreamHost).Set(1)
	}
}

// Begin counts a request as in flight and returns the function that ends it.
func (m *Metrics) Begin(route string) func() {
	g := m.inflight.WithLabelValues(route)
	g.Inc()
	return g.Dec
}

// Observe records one finished request; code 0 means the response was cut
// off after it started (an upstream failing mid-body).
func (m *Metrics) Observe(route, kind, method string, code int, bytes int64, seconds float64) {
	label := "aborted"
	if code > 0 {
		label = strconv.Itoa(code)
	}
	m.requests.WithLabelValues(route, kind, methodLabel(method), label).Inc()
	m.duration.WithLabelValues(route, kind).Observe(seconds)
	if bytes > 0 {
		m.bytesSent.WithLabelValues(route).Add(float64(bytes))
	}
}

// Upstream records one upstream answer; code 0 means no answer.
func (m *Metrics) Upstream(route string, code int) {
	label := "error"
	if code > 0 {
		label = strconv.Itoa(code)
	}
	m.upstream.WithLabelValues(route, label).Inc()
}

// Fallback counts one retry on a route's fallback upstream.
func (m *Metrics) Fallback(route, reason string) { m.fallback.WithLabelValues(route, reason).Inc() }

// RateLimitRemaining records an upstream's RateLimit-Remaining header
// ("100;w=21600" on Docker Hub: the count comes first).
func (m *Metrics) RateLimitRemaining(route, header string) {
	v, _, _ := strings.Cut(header, ";")
	if n, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && n >= 0 {
		m.rateLimit.WithLabelValues(route).Set(n)
	}
}

// Denied counts a request refused by access control or limits.
func (m *Metrics) Denied(route, reason string) { m.denied.WithLabelValues(route, reason).Inc() }

// SetLimits publishes the configured per-client limits.
func (m *Metrics) SetLimits(rate float64, burst, transfers int) {
	m.limits.WithLabelValues("rate_per_second").Set(rate)
	m.limits.WithLabelValues("burst").Set(float64(burst))
	m.limits.WithLabelValues("transfers").Set(float64(transfers))
}

// Cache counts one request the cache answered.
func (m *Metrics) Cache(route, kind, result string) {
	m.cacheRequests.WithLabelValues(route, kind, result).Inc()
}

// PublishFailed counts content the cache verified but could not store.
func (m *Metrics) PublishFailed() { m.cachePublishFailures.Inc() }

// Evicted counts one cache eviction.
func (m *Metrics) Evicted(int64) { m.cacheEvictions.Inc() }

// SetCacheSize names the function that reports the cache's size.
func (m *Metrics) SetCacheSize(size func() int64) { m.cacheSize.Store(&size) }

// UpstreamBytes counts body bytes read from an upstream.
func (m *Metrics) UpstreamBytes(route string, n int) {
	m.upstreamBytes.WithLabelValues(route).Add(float64(n))
}

// CountUpstreamBody wraps resp.Body so the bytes read from it are counted.
func (m *Metrics) CountUpstreamBody(resp *http.Response, route string) {
	resp.Body = &countingBody{ReadCloser: resp.Body, c: m.upstreamBytes.WithLabelValues(route)}
}

type countingBody struct {
	io.ReadCloser
	c prometheus.Counter
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.Add(float64(n))
	return n, err
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// AdminHandler serves /metrics from gatherer, /healthz always, and /readyz
// while ready is true (it turns false when shutdown begins, so load
// balancers stop sending new requests first).
func AdminHandler(gatherer prometheus.Gatherer, ready *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

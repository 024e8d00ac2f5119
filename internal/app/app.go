// Package app wires configuration, logging, metrics, the upstream
// transport and the relay into running servers, and shuts them down.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/registry-relay/registry-relay/internal/access"
	"github.com/registry-relay/registry-relay/internal/config"
	"github.com/registry-relay/registry-relay/internal/metrics"
	"github.com/registry-relay/registry-relay/internal/netguard"
	"github.com/registry-relay/registry-relay/internal/peers"
	"github.com/registry-relay/registry-relay/internal/registry"
	"github.com/registry-relay/registry-relay/internal/relay"
)

// Server timeouts. There is deliberately no WriteTimeout: a multi-GB blob
// is one response.
const (
	idleTimeout    = 120 * time.Second
	maxHeaderBytes = 64 << 10
)

// App is a configured, not yet started, relay.
type App struct {
	cfg       *config.Config
	log       *slog.Logger
	ready     atomic.Bool
	relay     *relay.Relay
	registry  *prometheus.Registry
	main      *http.Server
	admin     *http.Server
	transport *http.Transport
	peers     *peers.Ring
}

// New builds the relay from cfg, logging to logOut.
func New(cfg *config.Config, logOut io.Writer) (*App, error) {
	log := NewLogger(cfg, logOut)
	m := metrics.New()
	reg := prometheus.NewRegistry()
	if err := m.Register(reg); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	m.SetRoutes(routeInfo(cfg))
	a := &App{cfg: cfg, log: log, registry: reg, transport: NewTransport(cfg)}
	c, err := newCache(cfg, m, log)
	if err != nil {
		return nil, err
	}
	acc, err := newAccess(cfg, log)
	if err != nil {
		return nil, err
	}
	var ring *peers.Ring
	if len(cfg.Peers) > 0 || cfg.PeersDNS != "" {
		list := cfg.Peers
		if cfg.PeersDNS != "" {
			list = []string{cfg.PeerSelf} // until the first lookup
		}
		if ring, err = peers.New(list, cfg.PeerSelf, cfg.PeerSecret, nil); err != nil {
			return nil, fmt.Errorf("RELAY_PEERS: %w", err)
		}
	}
	a.peers = ring
	a.relay = relay.New(relay.Options{
		Routes:              registry.NewTable(cfg.Routes),
		Mirror:              cfg.Mirror,
		Metrics:             m,
		Log:                 log,
		Transport:           a.transport,
		MaxRedirects:        cfg.MaxRedirects,
		UpstreamIdleTimeout: cfg.IdleTimeout,
		PassBlobRedirects:   cfg.PassBlobRedirects,
		PublicScheme:        cfg.PublicScheme,
		TrustedProxies:      cfg.Trusted,
		Cache:               c,
		Access:              acc,
		Policies:            cfg.Policies,
		Peers:               ring,
	})
	m.SetLimits(cfg.RateLimit, cfg.RateBurst, cfg.MaxTransfersPerIP)
	a.main = &http.Server{
		Handler:           a.relay,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	a.admin = &http.Server{
		Handler:           metrics.AdminHandler(reg, &a.ready),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       idleTimeout,
	}
	return a, nil
}

// Handler is the registry-facing handler, for tests that serve it themselves.
func (a *App) Handler() http.Handler { return a.relay }

// newAccess builds the limits and client authentication the relay enforces.
func newAccess(cfg *config.Config, log *slog.Logger) (*relay.Access, error) {
	a := &relay.Access{TokenTTL: cfg.ClientTokenTTL}
	if cfg.RateLimit > 0 || cfg.MaxTransfersPerIP > 0 {
		a.Limiter = access.NewLimiter(cfg.RateLimit, cfg.RateBurst, cfg.MaxTransfersPerIP)
	}
	if cfg.ClientUsers == nil {
		return a, nil
	}
	var signerOpts []access.SignerOption
	var userOpts []access.UserFileOption
	if cfg.Clock != nil {
		signerOpts = append(signerOpts, access.WithClock(cfg.Clock))
		userOpts = append(userOpts, access.WithUserClock(cfg.Clock))
	}
	signer, err := access.NewSigner(cfg.ClientTokenKey, signerOpts...)
	if err != nil {
		return nil, fmt.Errorf("RELAY_TOKEN_KEY_FILE: %w", err)
	}
	if cfg.EphemeralTokenKey {
		log.Warn("RELAY_TOKEN_KEY_FILE is unset: relay tokens are sealed with a random key and verify on this process only; " +
			"replicas need a shared RELAY_TOKEN_KEY_FILE, and a restart makes clients log in again")
	}
	a.Users, a.Signer = access.NewUserFile(cfg.HtpasswdFile, cfg.ClientUsers, log, userOpts...), signer
	return a, nil
}

// CloseIdleConnections drops idle upstream connections; Serve does it on
// shutdown, tests that use Handler call it themselves.
func (a *App) CloseIdleConnections() {
	a.transport.CloseIdleConnections()
	a.relay.CloseIdleConnections()
}

// Gatherer exposes the metrics registry, for tests.
func (a *App) Gatherer() prometheus.Gatherer { return a.registry }

// NewTransport is the upstream transport: bounded dials, TLS handshakes
// and header waits, many idle connections per upstream, the environment's
// proxy settings, and no transparent decompression, so bodies and digests
// stay byte-exact. Requests marked netguard.PublicOnly (redirect hops)
// connect only to public addresses, judged on the address dialled.
func NewTransport(cfg *config.Config) *http.Transport {
	return &http.Transport{
		Proxy:                  netguard.Proxy(http.ProxyFromEnvironment),
		DialContext:            netguard.DialContext(&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}),
		TLSHandshakeTimeout:    cfg.TLSTimeout,
		ResponseHeaderTimeout:  cfg.HeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		ForceAttemptHTTP2:      true,
		DisableCompression:     true,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// NewLogger builds the JSON or text logger that cfg asks for.
func NewLogger(cfg *config.Config, out io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(cfg.LogFormat, "text") {
		return slog.New(slog.NewTextHandler(out, opts))
	}
	return slog.New(slog.NewJSONHandler(out, opts))
}

// Serve listens on the configured addresses and blocks until ctx is done,
// then drains: /readyz fails at once, listeners close, and in-flight
// transfers get the grace period to finish.
func (a *App) Serve(ctx context.Context) error {
	mainLn, adminLn, err := Listen(a.cfg)
	if err != nil {
		return err
	}
	return a.ServeListeners(ctx, mainLn, adminLn)
}

// Listen opens the registry and admin listeners that cfg names.
func Listen(cfg *config.Config) (mainLn, adminLn net.Listener, err error) {
	mainLn, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("RELAY_LISTEN %s: %w", cfg.Listen, err)
	}
	adminLn, err = net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		mainLn.Close()
		return nil, nil, fmt.Errorf("RELAY_ADMIN_LISTEN %s: %w", cfg.AdminListen, err)
	}
	return mainLn, adminLn, nil
}

// ServeListeners is Serve on listeners the caller opened.
func (a *App) ServeListeners(ctx context.Context, mainLn, adminLn net.Listener) error {
	serveMain := func() error { return a.main.Serve(mainLn) }
	if a.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(a.cfg.TLSCert, a.cfg.TLSKey)
		if err != nil {
			mainLn.Close()
			adminLn.Close()
			return fmt.Errorf("RELAY_TLS_CERT/RELAY_TLS_KEY: %w", err)
		}
		a.main.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		// ServeTLS, not a tls.Listener: it also offers HTTP/2.
		serveMain = func() error { return a.main.ServeTLS(mainLn, "", "") }
	}
	errc := make(chan error, 2)
	go func() { errc <- serveMain() }()
	go func() { errc <- a.admin.Serve(adminLn) }()
	if a.peers != nil && a.cfg.PeersDNS != "" {
		go a.discoverPeers(ctx)
	}
	a.ready.Store(true)
	a.log.Info("registry-relay listening", "addr", mainLn.Addr().String(), "admin_addr", adminLn.Addr().String(), "routes", routeSummary(a.cfg.Routes))

	select {
	case err := <-errc:
		a.ready.Store(false)
		a.admin.Close()
		a.main.Close()
		return err
	case <-ctx.Done():
	}
	return a.shutdown(!errors.Is(context.Cause(ctx), ErrInterrupted))
}

// peerDiscovery is how often RELAY_PEERS_DNS is looked up again.
const peerDiscovery = 15 * time.Second

// discoverPeers keeps the fleet to what RELAY_PEERS_DNS resolves to.
func (a *App) discoverPeers(ctx context.Context) {
	self, _ := url.Parse(a.cfg.PeerSelf) // validated by peers.New
	peers.Discover(ctx, a.peers, a.cfg.PeersDNS, self.Scheme, peerDiscovery, net.DefaultResolver.LookupHost,
		func(fleet []string, err error) {
			if err != nil {
				a.log.Warn("peer lookup failed; the fleet stays as it was", "name", a.cfg.PeersDNS, "err", err)
				return
			}
			a.log.Info("peers changed", "peers", strings.Join(fleet, ","))
		})
}

// ErrInterrupted is the cancel cause for an interactive stop (Ctrl-C): no
// load balancer needs the readiness delay then.
var ErrInterrupted = errors.New("interrupted")

func (a *App) shutdown(delay bool) error {
	a.ready.Store(false)
	a.log.Info("shutting down", "grace", a.cfg.ShutdownGrace.String(), "delay", a.cfg.ShutdownDelay.String())
	if delay && a.cfg.ShutdownDelay > 0 {
		time.Sleep(a.cfg.ShutdownDelay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownGrace)
	defer cancel()
	err := a.main.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		a.log.Warn("grace period over; closing remaining connections")
		a.main.Close()
	}
	a.admin.Close()
	a.CloseIdleConnections()
	return err
}

// routeInfo describes every route, mirror-only ones included, for
// relay_route_info.
func routeInfo(cfg *config.Config) []metrics.RouteInfo {
	routes := cfg.Routes
	if cfg.Mirror != nil {
		routes = append(slices.Clone(routes), cfg.Mirror.Routes()...)
	}
	out := make([]metrics.RouteInfo, len(routes))
	for i, r := range routes {
		out[i] = metrics.RouteInfo{Name: r.Name, AccessDomain: r.AccessDomain, UpstreamHost: r.Upstream.Host}
	}
	return out
}

func routeSummary(routes []*registry.Route) string {
	parts := make([]string, len(routes))
	for i, r := range routes {
		parts[i] = r.Name + "=" + r.AccessDomain + "->" + r.Upstream.Host
	}
	return strings.Join(parts, " ")
}

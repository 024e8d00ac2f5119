// Package relay is registry-relay's HTTP front: it picks a route by Host,
// answers the OCI pull API by proxying to the route's upstream, and serves
// the token endpoint that rewritten challenges point clients to.
package relay

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/registry-relay/registry-relay/internal/access"
	"github.com/registry-relay/registry-relay/internal/auth"
	"github.com/registry-relay/registry-relay/internal/metrics"
	"github.com/registry-relay/registry-relay/internal/oci"
	"github.com/registry-relay/registry-relay/internal/peers"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// Options configure a Relay.
type Options struct {
	Routes *registry.Table
	// Mirror is the host serving every registry, or nil.
	Mirror  *registry.Mirror
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// Transport reaches upstreams; it must not decompress bodies
	// (DisableCompression) so that lengths and digests stay exact.
	Transport http.RoundTripper
	// UpstreamIdleTimeout cuts an upstream body that sends no byte for
	// this long (0: never).
	UpstreamIdleTimeout time.Duration
	// MaxRedirects bounds the redirects followed for one request.
	MaxRedirects int
	// PassBlobRedirects returns blob redirects to the client.
	PassBlobRedirects bool
	// PublicScheme forces the scheme of rewritten realms ("http"/"https").
	PublicScheme string
	// TrustedProxies may set X-Forwarded-Proto.
	TrustedProxies []netip.Prefix
	// Cache, when not nil, is the pull-through cache.
	Cache *Cache
	// Peers, when not nil, are the other replicas of this relay: a blob
	// miss is filled once, by the digest's owner among them.
	Peers *peers.Ring
	// PeerTransport reaches the peers (Transport when nil).
	PeerTransport http.RoundTripper
	// Policies are the routes' repository and client lists, by route
	// name. Nil leaves every route unrestricted; otherwise a route missing
	// from it is refused everything.
	Policies map[string]access.RoutePolicy
	// Access, when not nil, holds limits and client authentication.
	Access *Access
}

// Relay is the registry-facing http.Handler.
type Relay struct {
	opts        Options
	routeByName map[string]*registry.Route
	log         *slog.Logger
	// peerTransport reaches the other replicas (the operator's own
	// addresses, named in RELAY_PEERS).
	peerTransport http.RoundTripper
	// upstreams holds each route's upstream chain, by route name.
	upstreams map[string]*upstream
	// hops carries every request to a host an upstream chose.
	hops    *hopGuard
	cache   *Cache
	realms  *auth.Realms
	tokens  *auth.TokenProxy
	handler http.Handler
}

// New wires a Relay.
func New(opts Options) *Relay {
	noFollow := &http.Client{
		Transport:     opts.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	rl := &Relay{opts: opts, log: opts.Log, realms: auth.NewRealms(noFollow), routeByName: map[string]*registry.Route{}, cache: opts.Cache}
	for _, route := range opts.Routes.All() {
		rl.routeByName[route.Name] = route
	}
	if opts.Mirror != nil {
		for _, route := range opts.Mirror.Routes() {
			rl.routeByName[route.Name] = route
		}
	}
	rl.hops = newGuard(opts.Transport, opts.UpstreamIdleTimeout)
	realmTransports := map[*registry.Route]http.RoundTripper{}
	for _, route := range rl.routeByName {
		realmTransports[route] = &steeredTransport{guard: rl.hops, route: route}
	}
	rl.tokens = &auth.TokenProxy{Realms: rl.realms, Log: opts.Log, Transport: func(r *registry.Route) http.RoundTripper {
		if rt := realmTransports[r]; rt != nil {
			return rt
		}
		return &steeredTransport{guard: rl.hops, route: r} // never unguarded, whatever route it is
	}}
	rl.peerTransport = opts.PeerTransport
	if rl.peerTransport == nil {
		rl.peerTransport = opts.Transport
	}
	rl.upstreams = map[string]*upstream{}
	for name, route := range rl.routeByName {
		rl.upstreams[name] = rl.newUpstream(route)
	}

	r := chi.NewRouter()
	r.Use(rl.observe, rl.resolveRoute, rl.guard)
	r.HandleFunc("/", rl.serveInfo)
	r.HandleFunc("/token", rl.serveToken)
	r.HandleFunc("/token/{realm}", rl.serveToken)
	r.HandleFunc("/v2", rl.serveRegistry)
	r.HandleFunc("/v2/*", rl.serveRegistry)
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		readOnly(r.Method).ServeHTTP(w, r)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		oci.Err(oci.CodeNameUnknown, "not a registry API path").ServeHTTP(w, r)
	})
	rl.handler = r
	return rl
}

func (rl *Relay) ServeHTTP(w http.ResponseWriter, r *http.Request) { rl.handler.ServeHTTP(w, r) }

// observe records the access log line and metrics of every request, from
// the exchange that the handlers fill in.
func (rl *Relay) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		x := &exchange{plan: plan{kind: oci.KindOther, host: r.Host, scheme: rl.publicScheme(r)}}
		if route := rl.opts.Routes.Lookup(r.Host); route != nil {
			x.route = route
		} else if m := rl.opts.Mirror; m != nil && registry.SameHost(r.Host, m.AccessDomain) {
			x.mirror = m
		}
		if x.mirror == nil {
			rl.track(x) // the host names the route: its label is final
		}
		rec := &recorder{ResponseWriter: w}
		defer func() {
			p := recover()
			if x.done != nil {
				x.done()
			}
			status := rec.status
			switch {
			case x.clientGone || (p == http.ErrAbortHandler && r.Context().Err() != nil):
				status = 499 // nginx's "client closed request", for logs and metrics only
			case p == http.ErrAbortHandler:
				status = 0 // the upstream failed mid-body; the client saw the connection cut
			}
			elapsed := time.Since(start)
			routeName := x.label()
			rl.opts.Metrics.Observe(routeName, string(x.kind), r.Method, status, rec.bytes, elapsed.Seconds())
			rl.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("route", routeName), slog.String("host", r.Host), slog.String("method", r.Method),
				slog.String("kind", string(x.kind)), slog.String("path", r.URL.EscapedPath()),
				slog.Int("status", status), slog.Bool("aborted", p != nil), slog.Int64("bytes", rec.bytes),
				slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
				slog.Int("upstream_status", x.upstreamStatus), slog.String("cache", x.cache),
				slog.String("user", x.clientUser), slog.String("remote", r.RemoteAddr))
			if p != nil {
				panic(p) // net/http aborts the connection quietly on ErrAbortHandler
			}
		}()
		next.ServeHTTP(rec, r.WithContext(withExchange(r.Context(), x)))
	})
}

// label is the route a request counts for in metrics and the log: the
// route it reached (on the mirror host, the one it resolved to), "mirror"
// for a mirror-host request that resolved to none, "none" off any route.
func (x *exchange) label() string {
	switch {
	case x.route != nil:
		return x.route.Name
	case x.mirror != nil:
		return metrics.MirrorRoute
	}
	return metrics.NoRoute
}

// track counts the request as in flight under its label, once that label
// is final: at the host for a route's own host, once resolved on the
// mirror host, so that the in-flight gauge and the counters agree.
func (rl *Relay) track(x *exchange) { x.done = rl.opts.Metrics.Begin(x.label()) }

// resolveRoute answers requests for hosts that no route serves.
func (rl *Relay) resolveRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if x := exchangeFrom(r.Context()); x.route == nil && x.mirror == nil {
			oci.Err(oci.CodeNameUnknown,
				"no registry is served at host "+quoteHost(r.Host)).ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveToken handles the token endpoint: resolve the request once (its
// route, on the mirror host from its scopes or realm id), decide whether
// it may go ahead, then forward it to the route's realm.
func (rl *Relay) serveToken(w http.ResponseWriter, r *http.Request) {
	x := exchangeFrom(r.Context())
	tr, tg, err := rl.resolveToken(w, r, x)
	if err != nil {
		err.ServeHTTP(w, r)
		return
	}
	if x.mirror != nil {
		if f := rl.clientVerdict(x); f != nil {
			rl.refuse(w, r, x, f)
			return
		}
	}
	if a := rl.opts.Access; a != nil && a.Users != nil {
		issue, f := rl.tokenIssuer(r, tr, tg.Route.Name)
		if f != nil {
			rl.refuse(w, r, x, f)
			return
		}
		tg.Issue = issue
	}
	status, tried := rl.tokens.Serve(w, r, tr, tg)
	x.upstreamStatus = status
	if tried {
		rl.opts.Metrics.Upstream(x.route.Name, status)
	}
}

// resolveToken reads a token request and finds where it goes.
func (rl *Relay) resolveToken(w http.ResponseWriter, r *http.Request, x *exchange) (*auth.TokenRequest, auth.Target, *oci.Error) {
	x.kind = oci.KindToken
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil, auth.Target{}, oci.Err(oci.CodeUnsupported, "the token endpoint accepts GET and POST")
	}
	tr, err := auth.ReadTokenRequest(w, r)
	if err != nil {
		return nil, auth.Target{}, err
	}
	tg := auth.Target{Route: x.route, RealmID: chi.URLParam(r, "realm")}
	if x.mirror != nil {
		tg.Route, tg.MapName = rl.mirrorTokenTarget(x.mirror, tg.RealmID, tr.Scopes())
		tg.NoAuthToken = true
		x.route = tg.Route
		rl.track(x)
	}
	tg.Permits = rl.policy(tg.Route).PermitsRepo
	return tr, tg, nil
}

// quoteHost keeps a hostile Host header from shaping the error text.
func quoteHost(h string) string {
	if len(h) > 255 {
		h = h[:255]
	}
	return strconv.Quote(h)
}

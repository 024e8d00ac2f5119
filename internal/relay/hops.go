package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/registry-relay/registry-relay/internal/lru"
	"github.com/registry-relay/registry-relay/internal/netguard"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// origins remembers whether the hosts the relay sends requests to itself
// (route upstreams and fallbacks, never a Location) are on a non-public
// address. An operator who points a route at 127.0.0.1 or 10.x — tests,
// air-gapped sites — gets redirects to non-public addresses followed for
// that route: its storage lives on the same network.
type origins struct {
	resolver *net.Resolver
	now      func() time.Time // nil means time.Now
	known    *lru.Cache[originEntry]
}

type originEntry struct {
	private bool
	ttl     time.Duration
}

// Lookups are rare (a redirect from a host not seen for a while) and the
// hosts are the operator's, so a small cache with a plain TTL does.
const (
	originTTL        = 5 * time.Minute
	originFailureTTL = 30 * time.Second
	originLookup     = 5 * time.Second
	maxOrigins       = 256
)

func newOrigins() *origins {
	return &origins{resolver: net.DefaultResolver, known: lru.New[originEntry](maxOrigins)}
}

// private reports whether u's host is a non-public address, or a name
// that resolves to one. A failed lookup counts as public: hops stay
// guarded.
func (o *origins) private(ctx context.Context, u *url.URL) bool {
	if o == nil {
		return false
	}
	host := u.Hostname()
	now := lru.Now(o.now)
	if e, at, ok := o.known.Get(host, originTTL, now); ok && now.Sub(at) < e.ttl {
		return e.private
	}
	ctx, cancel := context.WithTimeout(ctx, originLookup)
	defer cancel()
	public, err := netguard.ResolvesPublic(ctx, o.resolver, host)
	e := originEntry{private: !public, ttl: originTTL}
	if err != nil {
		e.ttl = originFailureTTL
	}
	o.known.Put(host, e, now)
	return e.private
}

// hopPolicy is how one chain of requests (the relay's request and the
// redirects it leads to) treats addresses.
type hopPolicy struct {
	// steered marks a chain whose first request already goes where an
	// upstream said: the token realm of a fallback's challenge.
	steered bool
	decide  func() bool
	decided bool
	public  bool
}

// publicOnly reports whether the chain's steered requests may only reach
// public addresses: unless the relay's own origin is non-public. It is
// decided at the first redirect, so requests that are not redirected never
// wait for a lookup.
func (p *hopPolicy) publicOnly() bool {
	if !p.decided {
		p.public, p.decided = p.decide(), true
	}
	return p.public
}

func (t *redirectFollower) policy(req *http.Request) *hopPolicy {
	ctx, r, origin := req.Context(), t.route, req.URL
	steered := !registry.SameAddress(origin, r.Upstream) && (r.Fallback == nil || !registry.SameAddress(origin, r.Fallback))
	p := &hopPolicy{steered: steered}
	p.decide = func() bool {
		if !steered {
			return !t.guard.origins.private(ctx, origin)
		}
		return t.guard.routePublicOnly(ctx, r)
	}
	return p
}

// hopGuard sends requests to hosts an upstream chose (redirect hops, token
// realms): through public, the public-only pool, with netguard's check,
// unless the route's own upstream is on the operator's network.
type hopGuard struct {
	next, public http.RoundTripper
	origins      *origins
}

// newGuard guards transport, whose bodies idleTimeout cuts when they stall.
func newGuard(transport http.RoundTripper, idle time.Duration) *hopGuard {
	return &hopGuard{
		next:    withIdleTimeout(transport, idle),
		public:  withIdleTimeout(publicHops(transport), idle),
		origins: newOrigins(),
	}
}

// routePublicOnly reports whether hosts r's upstream steers to must be
// public: unless its upstream (and fallback) are not.
func (g *hopGuard) routePublicOnly(ctx context.Context, r *registry.Route) bool {
	return !g.origins.private(ctx, r.Upstream) && (r.Fallback == nil || !g.origins.private(ctx, r.Fallback))
}

// send sends one request of a chain; a steered request of a public-only
// chain goes through the public-only pool, and a refusal becomes a
// redirectError naming the host and the reason.
func (g *hopGuard) send(req *http.Request, steered bool, p *hopPolicy) (*http.Response, error) {
	if !steered || !p.publicOnly() {
		return g.next.RoundTrip(req)
	}
	host := req.URL.Hostname()
	err := netguard.CheckHost(host)
	var resp *http.Response
	if err == nil {
		resp, err = g.public.RoundTrip(req.WithContext(netguard.PublicOnly(req.Context())))
	}
	var re *netguard.RefusedError
	if errors.As(err, &re) {
		refused := *re
		if refused.Host == "" {
			refused.Host = host
		}
		return nil, &redirectError{fmt.Sprintf("to %s: %v", req.URL.Host, &refused)}
	}
	return resp, err
}

// checkPassed judges a Location the relay hands to the client instead of
// following it: the client will connect there on the upstream's word, so
// it must be as public as a hop the relay dials itself. Without a dial to
// check, the name is looked up here; one the relay cannot resolve is the
// client's resolver's to judge.
func (g *hopGuard) checkPassed(ctx context.Context, loc *url.URL) error {
	host := loc.Hostname()
	err := netguard.CheckHost(host)
	if err == nil && strings.ContainsFunc(host, func(r rune) bool { return r > unicode.MaxASCII }) {
		// A Location names hosts in ASCII (punycode); a client may map
		// full-width digits and the like onto an address the relay's
		// checks never saw.
		err = &netguard.RefusedError{Host: host, Reason: netguard.Invalid}
	}
	if err == nil && g.origins.private(ctx, loc) { // the lookups origins caches
		err = &netguard.RefusedError{Host: host, Reason: "resolves to a non-public address"}
	}
	if err != nil {
		return &redirectError{fmt.Sprintf("to %s: %v", loc.Host, err)}
	}
	return nil
}

// steeredTransport carries one route's requests to destinations its
// upstream named, token realms above all: always guarded as steered.
type steeredTransport struct {
	guard *hopGuard
	route *registry.Route
}

var _ http.RoundTripper = (*steeredTransport)(nil)

func (t *steeredTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	p := &hopPolicy{steered: true, decide: func() bool { return t.guard.routePublicOnly(ctx, t.route) }}
	return t.guard.send(req, true, p)
}

// publicHops is the transport for public-only redirect hops: a clone of
// the upstream transport, with its own connection pool, so a hop never
// reuses a connection dialled without the check (to a route's private
// upstream, say, under the same host name). Other RoundTrippers are used
// as they are; the hop's context still carries the mark.
func publicHops(next http.RoundTripper) http.RoundTripper {
	if t, ok := next.(*http.Transport); ok {
		return t.Clone()
	}
	return next
}

// CloseIdleConnections drops idle upstream connections: those of
// Options.Transport and of the relay's own pool for redirect hops.
func (rl *Relay) CloseIdleConnections() {
	closeIdle(rl.hops.next)
	closeIdle(rl.hops.public)
}

// closeIdle reaches the pool below a transport.
func closeIdle(rt http.RoundTripper) {
	switch t := rt.(type) {
	case interface{ CloseIdleConnections() }:
		t.CloseIdleConnections()
	}
}

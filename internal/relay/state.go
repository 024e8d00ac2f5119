package relay

import (
	"context"
	"net/netip"
	"net/url"

	"github.com/registry-relay/registry-relay/internal/oci"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// exchange is one request as the relay handles it: the plan resolved for
// it, and its outcome. observe creates it and reads it for the access log
// and metrics, so handlers never touch either.
type exchange struct {
	plan
	outcome
}

// plan is what the relay resolves about a request before it acts: the
// host's route (observe; on the mirror host, replaced once by the route
// the request resolves to in resolveRegistry or resolveToken), the client
// (guard), the path and the upstream request (resolveRegistry), and the
// client's identity and cache keys (authenticateClient, prepareCache,
// serveFromCache). Nothing after those steps changes it, and the upstream
// transports read none of it: they are built per route.
type plan struct {
	route        *registry.Route
	mirror       *registry.Mirror // set on the mirror host; route is resolved per request
	prefix       string           // registry prefix the client put before the name ("gcr.io/")
	host         string           // Host as the client sent it, port included
	scheme       string           // scheme the client sees the relay at
	kind         oci.Kind
	path         oci.Path
	target       *url.URL // upstream URL of a proxied registry request
	upstreamRepo string   // the repository name as the upstream knows it
	clientIP     netip.Addr
	clientUser   string // the relay account of an authenticated client
	authKey      string // the client's identity for this object, for cache authorization
	tagKey       string // the tag resolution this request asks for, if any
	capture      bool   // a miss whose answer the cache keeps (serveFromCache)
	fromPeer     bool   // forwarded by another replica, which admitted the client (guard)
}

// outcome is what happened, as the access log and metrics report it.
type outcome struct {
	cache          string // how the cache answered: hit, miss, stale, coalesced, bypass
	upstreamStatus int
	clientGone     bool
	done           func() // ends the in-flight count (track)
}

type exchangeKey struct{}

func withExchange(ctx context.Context, x *exchange) context.Context {
	return context.WithValue(ctx, exchangeKey{}, x)
}

// exchangeFrom returns the request's exchange, or nil outside the relay's
// handler chain (realm discovery pings, for instance).
func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

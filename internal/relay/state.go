package relay

import (
	"context"
	"net/netip"
	"net/url"

	"github.com/registry-relay/registry-relay/internal/oci"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// exchange is what the relay learns about one request as it is handled;
// the observe middleware reads it for the access log and metrics, so
// handlers never touch either.
type exchange struct {
	route          *registry.Route
	mirror         *registry.Mirror // set on the mirror host; route is resolved per request
	prefix         string           // registry prefix the client put before the name ("gcr.io/")
	host           string           // Host as the client sent it, port included
	scheme         string           // scheme the client sees the relay at
	kind           oci.Kind
	path           oci.Path
	target         *url.URL // upstream URL of a proxied registry request
	upstreamRepo   string   // the repository name as the upstream knows it
	cache          string   // how the cache answered: hit, miss, stale, coalesced
	authKey        string   // the client's identity for this repository, for cache authorization
	clientIP       netip.Addr
	clientUser     string // the relay account of an authenticated client
	tagKey         string // the tag resolution this request asks for, if any
	upstreamStatus int
	clientGone     bool
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

package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/registry-relay/registry-relay/internal/httpbody"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// ErrNoTokenAuth means the upstream's ping carries no Bearer challenge:
// it serves anonymously or only knows Basic auth.
var ErrNoTokenAuth = errors.New("upstream does not use token authentication")

// ErrRealmRefused means an upstream advertised a realm the route may not
// contact.
var ErrRealmRefused = errors.New("token realm refused")

// ValidateRealm checks an upstream-advertised realm against the route's
// allow-list (Route.AuthHostAllowed): a realm is where the relay sends
// clients' credentials and its own account's, so an operator-overridden
// upstream is held to it as strictly as a built-in one.
func ValidateRealm(route *registry.Route, realm string) (*url.URL, error) {
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%w: %q is not an http(s) URL", ErrRealmRefused, realm)
	}
	if u.Scheme == "http" && route.Upstream.Scheme == "https" {
		return nil, fmt.Errorf("%w: %q would downgrade an https upstream to plain http", ErrRealmRefused, realm)
	}
	if !route.AuthHostAllowed(u) {
		return nil, fmt.Errorf("%w: host %q is not an allowed auth host of route %s (list it, with its port if not the default, in %s_AUTH_HOSTS)",
			ErrRealmRefused, u.Host, route.Name, strings.ToUpper(route.Name))
	}
	u.Fragment = ""
	return u, nil
}

// pingTimeout bounds realm discovery, which a token request waits for.
const pingTimeout = 15 * time.Second

// noTokenAuthTTL is how long an upstream that answered its ping without a
// Bearer challenge is believed, so /token on anonymous routes does not
// ping the upstream every time.
const noTokenAuthTTL = time.Minute

// maxRealmsPerRoute bounds the realms remembered for one route; upstreams
// use one or two, so more means churn, and the oldest are forgotten.
const maxRealmsPerRoute = 32

// Realms remembers the token realms upstreams advertise, each under an id
// that goes into the realm the relay hands to the client. A token request
// then reaches exactly the realm of the challenge that client received
// (nvcr.io, for one, uses different realms for anonymous and expired-token
// challenges), and no URL is ever taken from the client.
type Realms struct {
	client  *http.Client
	mu      sync.Mutex
	byRoute map[string]*routeRealms
	routeOf map[string]string // realm id -> route name
	group   singleflight.Group
}

type routeRealms struct {
	service   string // the service parameter of the latest challenge
	byID      map[string]*url.URL
	order     []string  // ids, oldest first
	latest    *url.URL  // for token requests that carry no id
	noAuthTil time.Time // negative cache of discovery
}

// NewRealms returns an empty store that discovers realms with client.
func NewRealms(client *http.Client) *Realms {
	return &Realms{client: client, byRoute: map[string]*routeRealms{}, routeOf: map[string]string{}}
}

// RouteOf names the route whose challenge carried the realm with this id,
// so the mirror host knows the upstream of a token request.
func (rs *Realms) RouteOf(id string) (string, bool) {
	rs.mu.Lock()
	name, ok := rs.routeOf[id]
	rs.mu.Unlock()
	if ok {
		return name, true
	}
	if i := strings.LastIndex(id, "."); i > 0 {
		return id[:i], true // the caller checks that the route exists
	}
	return "", false
}

// RealmID names a realm of a route: "<route>.<hash of the realm>". It is
// stable across restarts and replicas, and says which route it belongs to
// even where this replica has not seen the realm (the mirror host needs
// the route of every token request).
func RealmID(route *registry.Route, realm *url.URL) string {
	sum := sha256.Sum256([]byte(route.Name + "\n" + realm.String()))
	return route.Name + "." + hex.EncodeToString(sum[:8])
}

// Learn records a realm seen in an upstream challenge after validating it
// and returns its id.
func (rs *Realms) Learn(route *registry.Route, realm string) (string, error) {
	u, err := ValidateRealm(route, realm)
	if err != nil {
		return "", err
	}
	id := RealmID(route, u)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rr := rs.route(route.Name)
	if _, ok := rr.byID[id]; !ok {
		if len(rr.order) == maxRealmsPerRoute {
			delete(rr.byID, rr.order[0])
			delete(rs.routeOf, rr.order[0])
			rr.order = rr.order[1:]
		}
		rr.byID[id] = u
		rr.order = append(rr.order, id)
		rs.routeOf[id] = route.Name
	}
	rr.latest, rr.noAuthTil = u, time.Time{}
	return id, nil
}

func (rs *Realms) route(name string) *routeRealms {
	rr := rs.byRoute[name]
	if rr == nil {
		rr = &routeRealms{byID: map[string]*url.URL{}}
		rs.byRoute[name] = rr
	}
	return rr
}

// NoteService remembers the service parameter a route's upstream names in
// its challenges, for token requests that reach the relay with the relay's
// own service name (after a challenge the relay issued itself).
func (rs *Realms) NoteService(route *registry.Route, service string) {
	if service == "" {
		return
	}
	rs.mu.Lock()
	rs.route(route.Name).service = service
	rs.mu.Unlock()
}

// Service returns the service parameter last noted for a route.
func (rs *Realms) Service(route *registry.Route) string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.route(route.Name).service
}

// Lookup returns the realm with the given id. An unknown or empty id (a
// restart, another replica) falls back to the route's latest realm, and
// to pinging the upstream's /v2/ when none has been seen.
func (rs *Realms) Lookup(ctx context.Context, route *registry.Route, id string) (*url.URL, error) {
	rs.mu.Lock()
	rr := rs.route(route.Name)
	u := rr.byID[id]
	if u == nil {
		u = rr.latest
	}
	noAuth := time.Now().Before(rr.noAuthTil)
	rs.mu.Unlock()
	switch {
	case u != nil:
		return u, nil
	case noAuth:
		return nil, ErrNoTokenAuth
	}
	v, err, _ := rs.group.Do(route.Name, func() (any, error) {
		return rs.discover(context.WithoutCancel(ctx), route)
	})
	if err != nil {
		return nil, err
	}
	return v.(*url.URL), nil
}

func (rs *Realms) discover(ctx context.Context, route *registry.Route) (*url.URL, error) {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, route.Upstream.String()+"/v2/", nil)
	if err != nil {
		return nil, err
	}
	resp, err := rs.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pinging %s: %w", route.Upstream.Host, err)
	}
	httpbody.Drain(resp.Body)
	for _, h := range resp.Header.Values("WWW-Authenticate") {
		cs, err := ParseChallenges(h)
		if err != nil {
			continue
		}
		for _, c := range cs {
			if realm := c.Get("realm"); realm != "" && strings.EqualFold(c.Scheme, "Bearer") {
				if _, err := rs.Learn(route, realm); err != nil {
					return nil, err
				}
				rs.NoteService(route, c.Get("service"))
				return ValidateRealm(route, realm)
			}
		}
	}
	rs.mu.Lock()
	rs.route(route.Name).noAuthTil = time.Now().Add(noTokenAuthTTL)
	rs.mu.Unlock()
	return nil, ErrNoTokenAuth
}

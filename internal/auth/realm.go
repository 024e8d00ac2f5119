package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/registry-relay/registry-relay/internal/registry"
)

// ErrNoTokenAuth means the upstream's ping carries no Bearer challenge:
// it serves anonymously or only knows Basic auth.
var ErrNoTokenAuth = errors.New("upstream does not use token authentication")

// ErrRealmRefused means an upstream advertised a realm the route may not
// contact.
var ErrRealmRefused = errors.New("token realm refused")

// ValidateRealm checks an upstream-advertised realm against the route's
// allow-list. A built-in upstream may only send clients' credentials to its
// known auth hosts, and only over https when the upstream itself is https;
// an operator-overridden upstream is trusted to name its own realm.
func ValidateRealm(route *registry.Route, realm string) (*url.URL, error) {
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%w: %q is not an http(s) URL", ErrRealmRefused, realm)
	}
	if u.Scheme == "http" && route.Upstream.Scheme == "https" {
		return nil, fmt.Errorf("%w: %q would downgrade an https upstream to plain http", ErrRealmRefused, realm)
	}
	if !route.UpstreamOverridden && !route.AuthHostAllowed(u.Host) {
		return nil, fmt.Errorf("%w: host %q is not an allowed auth host of route %s (extend it with the route's _AUTH_HOSTS variable)",
			ErrRealmRefused, u.Hostname(), route.Name)
	}
	u.Fragment = ""
	return u, nil
}

// pingTimeout bounds realm discovery, which a token request waits for.
const pingTimeout = 15 * time.Second

// Realms remembers, per route, the token realm its upstream advertises, so
// that the relay's token endpoint knows where to forward without taking a
// URL from the client.
type Realms struct {
	client *http.Client
	mu     sync.RWMutex
	known  map[string]*url.URL
	group  singleflight.Group
}

// NewRealms returns an empty store that discovers realms with client.
func NewRealms(client *http.Client) *Realms {
	return &Realms{client: client, known: map[string]*url.URL{}}
}

// Learn records a realm seen in an upstream challenge after validating it.
func (rs *Realms) Learn(route *registry.Route, realm string) (*url.URL, error) {
	u, err := ValidateRealm(route, realm)
	if err != nil {
		return nil, err
	}
	rs.mu.Lock()
	rs.known[route.Name] = u
	rs.mu.Unlock()
	return u, nil
}

// Lookup returns the route's realm, pinging the upstream's /v2/ when none
// has been seen yet (after a restart, clients keep using the relay's realm).
func (rs *Realms) Lookup(ctx context.Context, route *registry.Route) (*url.URL, error) {
	rs.mu.RLock()
	u := rs.known[route.Name]
	rs.mu.RUnlock()
	if u != nil {
		return u, nil
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
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	for _, h := range resp.Header.Values("WWW-Authenticate") {
		cs, err := ParseChallenges(h)
		if err != nil {
			continue
		}
		for _, c := range cs {
			if realm := c.Get("realm"); realm != "" && strings.EqualFold(c.Scheme, "Bearer") {
				return rs.Learn(route, realm)
			}
		}
	}
	return nil, ErrNoTokenAuth
}

package relay

import (
	"strconv"

	"github.com/registry-relay/registry-relay/internal/oci"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// resolveMirror picks the route of a request on the mirror host and strips
// the registry prefix from p: a "gcr.io/" path prefix (podman and CRI-O
// mirrors, "relay/gcr.io/x/y"), else containerd's ?ns=, else the default
// route (Docker's registry-mirrors, which only ever mirror Docker Hub).
func (rl *Relay) resolveMirror(x *exchange, p *oci.Path, ns string) *oci.Error {
	m := x.mirror
	if route, rest, ok := m.Split(p.Name); ok {
		if route == nil {
			return unservedRegistry(p.Name[:len(p.Name)-len(rest)-1])
		}
		x.route, x.prefix, p.Name = route, p.Name[:len(p.Name)-len(rest)], rest
		x.path = *p
		return nil
	}
	if ns != "" {
		if x.route = m.ForNamespace(ns); x.route == nil {
			return unservedRegistry(ns)
		}
		return nil
	}
	x.route = m.Default
	return nil
}

func unservedRegistry(name string) *oci.Error {
	return oci.Err(oci.CodeNameUnknown,
		"registry "+strconv.Quote(name)+" is not served by this relay")
}

// mirrorTokenTarget finds the upstream of a token request on the mirror
// host: a scope naming a registry prefix decides (podman asks the realm of
// the ping for every registry), else the route whose challenge carried the
// realm id, else the default route. Scopes are mapped to that route's
// names; the URL contacted is still only ever a realm that route's
// upstream advertised.
func (rl *Relay) mirrorTokenTarget(m *registry.Mirror, id string, scopes []string) (*registry.Route, func(string) string) {
	route := m.Default
	if name, ok := rl.realms.RouteOf(id); ok {
		if byID := rl.routeByName[name]; byID != nil {
			route = byID
		}
	}
	for _, s := range scopes {
		if repo, ok := registry.ScopeRepository(s); ok {
			if prefixed, _, isPrefix := m.Split(repo); isPrefix && prefixed != nil {
				route = prefixed
				break
			}
		}
	}
	return route, func(name string) string {
		if prefixed, rest, ok := m.Split(name); ok {
			if prefixed == route {
				return route.Repository(rest)
			}
			return name // another registry's scope: the realm will not grant it
		}
		return route.Repository(name)
	}
}

package registry

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// DefaultRegistryMap is DOCKER_REGISTRY_MAP's default: the registries the
// mirror host serves by name, and "default" for names without one.
var DefaultRegistryMap = map[string]string{
	"docker.io":         "registry-1.docker.io",
	"gcr.io":            "gcr.io",
	"registry.k8s.io":   "registry.k8s.io",
	"quay.io":           "quay.io",
	"ghcr.io":           "ghcr.io",
	"mcr.microsoft.com": "mcr.microsoft.com",
	"public.ecr.aws":    "public.ecr.aws",
	"default":           "registry-1.docker.io",
}

// Mirror resolves requests on the mirror access domain, where one host
// serves every registry: by containerd's ?ns=, by a registry-name prefix
// in the repository path (podman, CRI-O, "relay/gcr.io/x/y"), and
// otherwise as Docker Hub (Docker's registry-mirrors).
type Mirror struct {
	AccessDomain string
	// Default serves names without a registry prefix or ns.
	Default *Route
	// byName maps registry names (and upstream hosts) to routes.
	byName map[string]*Route
	// extra are routes that exist only behind the mirror.
	extra []*Route
}

// NewMirror resolves every entry of regMap (registry name -> upstream
// host or route name) to one of routes, or to a new route of its own when
// no configured route has that upstream.
func NewMirror(domain string, regMap map[string]string, routes []*Route) (*Mirror, error) {
	m := &Mirror{AccessDomain: domain, byName: map[string]*Route{}}
	keys := make([]string, 0, len(regMap))
	for k := range regMap {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic route creation
	for _, key := range keys {
		r, err := m.resolve(key, regMap[key], routes)
		if err != nil {
			return nil, err
		}
		if key == "default" {
			m.Default = r
			continue
		}
		if !looksLikeRegistry(key) {
			return nil, fmt.Errorf("%q is not a registry host name (it needs a dot or a port, or be localhost)", key)
		}
		m.byName[strings.ToLower(key)] = r
	}
	if m.Default == nil {
		return nil, fmt.Errorf(`no "default" entry: names without a registry prefix need an upstream`)
	}
	for _, r := range routes {
		for _, n := range []string{r.Registry, NormalizeHost(r.Upstream.Host)} {
			if _, taken := m.byName[n]; n != "" && !taken {
				m.byName[n] = r
			}
		}
	}
	return m, nil
}

func (m *Mirror) resolve(key, value string, routes []*Route) (*Route, error) {
	for _, r := range append(routes, m.extra...) {
		if value == r.Name || strings.EqualFold(value, r.Upstream.Host) || strings.EqualFold(value, r.Upstream.String()) ||
			(r.BuiltinUpstreamHost != "" && strings.EqualFold(value, r.BuiltinUpstreamHost)) {
			return r, nil
		}
	}
	raw := value
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return nil, fmt.Errorf("%q -> %q: want an upstream host or base URL", key, value)
	}
	u.Path = ""
	name := routeName(u.Host)
	for _, other := range append(routes, m.extra...) {
		if other.Name == name {
			return nil, fmt.Errorf("%q -> %q: its route name %s is already taken", key, value, name)
		}
	}
	// A realm on the upstream itself is all this route trusts.
	r := &Route{Name: name, Upstream: u, Registry: key}
	if key == "docker.io" || u.Host == "registry-1.docker.io" {
		r.Patch = DockerHubRepository
	}
	m.extra = append(m.extra, r)
	return r, nil
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// routeName derives a metrics-safe route name from an operator-chosen host.
func routeName(host string) string {
	return "mirror_" + strings.Trim(nonName.ReplaceAllString(strings.ToLower(host), "_"), "_")
}

func looksLikeRegistry(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

// Routes are the routes that exist only behind the mirror host.
func (m *Mirror) Routes() []*Route { return m.extra }

// ForNamespace returns the route for containerd's ns parameter.
func (m *Mirror) ForNamespace(ns string) *Route { return m.byName[NormalizeHost(ns)] }

// Split finds a registry-name prefix in a client repository name:
// "gcr.io/distroless/static" -> gcr route, "distroless/static". ok is
// false when the first segment is not a registry name at all; route is nil
// when it is one this relay does not serve.
func (m *Mirror) Split(name string) (route *Route, rest string, ok bool) {
	first, rest, found := strings.Cut(name, "/")
	if !found || !looksLikeRegistry(first) {
		return nil, name, false
	}
	return m.byName[strings.ToLower(first)], rest, true
}

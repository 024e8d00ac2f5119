// Package registry describes the upstream registries the relay serves: the
// built-in table, the resolved routes, and the pure per-registry patches.
package registry

import (
	"net"
	"net/url"
	"slices"
	"strings"
)

// Route ties one access domain to one upstream registry.
type Route struct {
	// Name is the stable route name used in metrics and logs ("dockerhub").
	Name string
	// AccessDomain is the host clients use to reach this route.
	AccessDomain string
	// Upstream is the upstream registry's base URL (scheme and host, no path).
	Upstream *url.URL
	// UpstreamOverridden is set when the operator pointed a built-in route
	// at another host; the built-in auth and credential hosts then do not
	// apply, only those the operator lists.
	UpstreamOverridden bool
	// AuthHosts are the hosts, besides the upstream's own origin, that a
	// token realm may point to: "host" (the scheme's default port) or
	// "host:port". Token requests go nowhere else.
	AuthHosts []string
	// CredentialHosts are redirect targets, other than the upstream host
	// itself, that may still receive the client's Authorization header
	// (lscr.io hands pulls over to ghcr.io, which wants the same token),
	// in AuthHosts' form. Their answers count as the upstream's own: a
	// challenge from one of them is acted on, one from any other hop is not.
	CredentialHosts []string
	// Patch maps a client's repository name to the upstream's, as
	// Builtin.Patch; nil keeps names as they are.
	Patch func(name string) string
	// Official, when not nil, limits Patch to these single names
	// (DOCKER_HUB_OFFICIAL_IMAGES).
	Official map[string]bool
	// Registry is the registry's name in image references ("docker.io"),
	// by which the mirror host finds the route.
	Registry string
	// Credentials, when set, are the relay's own account at the upstream,
	// used for token requests that arrive without credentials.
	Credentials *Credentials
	// Fallback is an upstream tried when this one fails (FALLBACK_REGISTRY_MAP).
	Fallback *url.URL
	// BuiltinUpstreamHost is a built-in route's default upstream host, so
	// that DOCKER_REGISTRY_MAP's "registry-1.docker.io" finds the route
	// even when the operator pointed it elsewhere.
	BuiltinUpstreamHost string
}

// Credentials are a username and password for an upstream's token service.
// Their String form never shows the password.
type Credentials struct {
	Username string
	Password string
}

func (c *Credentials) String() string { return c.Username + ":<redacted>" }

// Repository maps a client-facing repository name to the upstream's.
func (r *Route) Repository(name string) string {
	if r.Patch == nil || (r.Official != nil && !r.Official[name]) {
		return name
	}
	return r.Patch(name)
}

// AuthHostAllowed reports whether a token realm at u may be contacted:
// the upstream's own origin (same scheme, host and port), or one of the
// route's auth hosts, never over plain http when the upstream is https.
// An overridden upstream is held to the same rule: its realm host must be
// listed in <NAME>_AUTH_HOSTS.
func (r *Route) AuthHostAllowed(u *url.URL) bool {
	if r.sameOrigin(u) {
		return true
	}
	return !r.downgrades(u) && slices.ContainsFunc(r.AuthHosts, func(p string) bool { return HostMatches(p, u) })
}

// KeepsCredentials reports whether a redirect to u may carry the client's
// Authorization header. Only the upstream's exact origin and the route's
// credential hosts qualify: Go's client would also keep it for
// subdomains, and signed CDN URLs (cdn01.quay.io, *.data.mcr.microsoft.com)
// reject requests that carry one. The same hosts are the ones whose
// answers speak for the upstream (see SpeaksFor).
func (r *Route) KeepsCredentials(u *url.URL) bool {
	if r.sameOrigin(u) {
		return true
	}
	return !r.downgrades(u) && slices.ContainsFunc(r.CredentialHosts, func(p string) bool { return HostMatches(p, u) })
}

// SpeaksFor reports whether a response from u is the upstream's own word:
// only such a response may teach the relay a token realm. A CDN or storage
// host that a redirect led to is not.
func (r *Route) SpeaksFor(u *url.URL) bool { return r.KeepsCredentials(u) }

func (r *Route) sameOrigin(u *url.URL) bool { return SameOrigin(u, r.Upstream) }

// downgrades reports whether u is plain http although the upstream is https.
func (r *Route) downgrades(u *url.URL) bool {
	return u.Scheme != "https" && r.Upstream.Scheme == "https"
}

// HostMatches reports whether u is at a host pattern of AuthHosts'
// form: "host" matches that host on the scheme's default port only,
// "host:port" that host on that port.
func HostMatches(pattern string, u *url.URL) bool {
	host, port, err := net.SplitHostPort(pattern)
	if err != nil {
		host, port = pattern, defaultPorts[u.Scheme]
	}
	return SameHost(host, u.Host) && port == EffectivePort(u)
}

var defaultPorts = map[string]string{"https": "443", "http": "80"}

// EffectivePort is u's port, or its scheme's default.
func EffectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	return defaultPorts[u.Scheme]
}

// SameOrigin reports whether a and b have the same scheme, host and
// effective port: where a token may go, or a credential may follow.
func SameOrigin(a, b *url.URL) bool { return a.Scheme == b.Scheme && SameAddress(a, b) }

// SameAddress reports whether a and b name the same host (as
// NormalizeHost sees it) on the same effective port, whatever their
// schemes: "https://Gcr.io" and "https://gcr.io:443" are one address. It
// is the relay's one host comparison; the scheme only supplies the
// default port.
func SameAddress(a, b *url.URL) bool {
	return SameHost(a.Host, b.Host) && EffectivePort(a) == EffectivePort(b)
}

// SameHost compares two hosts (ports ignored) as NormalizeHost sees them.
func SameHost(a, b string) bool { return NormalizeHost(a) == NormalizeHost(b) }

// NormalizeHost lower-cases a host, drops the port and a trailing dot, so
// that "DHCR.Example.com.:443" matches "dhcr.example.com".
func NormalizeHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// Table finds the route for a request's Host header.
type Table struct {
	routes []*Route
	byHost map[string]*Route
}

// NewTable indexes routes by access domain. Callers validate uniqueness
// first (config does, naming the variables); later duplicates are ignored.
func NewTable(routes []*Route) *Table {
	t := &Table{routes: routes, byHost: make(map[string]*Route, len(routes))}
	for _, r := range routes {
		h := NormalizeHost(r.AccessDomain)
		if _, dup := t.byHost[h]; !dup {
			t.byHost[h] = r
		}
	}
	return t
}

// Lookup returns the route serving host, or nil.
func (t *Table) Lookup(host string) *Route { return t.byHost[NormalizeHost(host)] }

// All returns the routes in configuration order.
func (t *Table) All() []*Route { return t.routes }

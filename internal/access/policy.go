// Package access decides who may use the relay: repository allow and deny
// lists, client IP allow-lists, per-client rate and transfer limits, and
// relay-level client authentication. Everything here is pure logic or
// in-memory state; the relay applies it at its HTTP edge.
package access

import (
	"fmt"
	"net/http"
	"net/netip"
	"path"
	"strings"
)

// RepoPolicy allows repositories matching Allow (all, when empty) unless
// they match Deny. Patterns are path.Match globs on the upstream's name
// ("library/*", "bitnami/*"), where "*" stays within one segment; a
// trailing "/**" matches any depth ("myorg/**").
type RepoPolicy struct {
	Allow, Deny []string
}

// ValidatePattern reports a malformed glob.
func ValidatePattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty pattern")
	}
	_, err := path.Match(strings.TrimSuffix(p, "/**"), "")
	return err
}

// Permits reports whether repo may be pulled.
func (p RepoPolicy) Permits(repo string) bool {
	for _, d := range p.Deny {
		if matchRepo(d, repo) {
			return false
		}
	}
	if len(p.Allow) == 0 {
		return true
	}
	for _, a := range p.Allow {
		if matchRepo(a, repo) {
			return true
		}
	}
	return false
}

func matchRepo(pattern, repo string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/**"); ok {
		segs := strings.Count(prefix, "/") + 1
		parts := strings.SplitN(repo, "/", segs+1)
		if len(parts) <= segs {
			return false
		}
		ok, _ := path.Match(prefix, strings.Join(parts[:segs], "/"))
		return ok
	}
	ok, _ := path.Match(pattern, repo)
	return ok
}

// RoutePolicy is what a route lets through: which upstream repositories
// (<NAME>_ALLOW_REPOS, _DENY_REPOS) and which client addresses
// (<NAME>_ALLOW_CIDRS). The zero value lets everything through.
type RoutePolicy struct {
	Repos   RepoPolicy
	Clients IPPolicy
	// Closed refuses every repository and client: the policy of a route
	// the configuration gave none, so that a forgotten entry fails closed.
	Closed bool
}

// PermitsRepo reports whether repo may be pulled through the route.
func (p RoutePolicy) PermitsRepo(repo string) bool { return !p.Closed && p.Repos.Permits(repo) }

// PermitsClient reports whether addr may use the route.
func (p RoutePolicy) PermitsClient(addr netip.Addr) bool { return !p.Closed && p.Clients.Permits(addr) }

// IPPolicy allows clients whose address is in one of its prefixes; an
// empty policy allows everyone.
type IPPolicy []netip.Prefix

// Permits reports whether addr may use the route.
func (p IPPolicy) Permits(addr netip.Addr) bool {
	if len(p) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, pr := range p {
		if pr.Contains(addr) {
			return true
		}
	}
	return false
}

// ParsePrefix reads one entry of an address list (<NAME>_ALLOW_CIDRS,
// RELAY_TRUSTED_PROXIES): a CIDR, or a single address standing for
// itself alone. The prefix is masked, so "10.1.2.3/8" is 10.0.0.0/8.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an IP address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Trusted reports whether addr is one of the trusted proxies; an empty
// list trusts none (unlike an empty IPPolicy, which permits everyone).
func Trusted(addr netip.Addr, trusted []netip.Prefix) bool {
	return len(trusted) > 0 && IPPolicy(trusted).Permits(addr)
}

// TrustedPeer reports whether r came straight from a trusted proxy, whose
// X-Forwarded-* headers may then be believed.
func TrustedPeer(r *http.Request, trusted []netip.Prefix) bool {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && Trusted(peer.Addr(), trusted)
}

// ClientIP is the address of the client: the direct peer, or, when that
// peer is a trusted proxy, the right-most X-Forwarded-For entry that is
// not itself a trusted proxy (entries further left are the client's word).
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := peer.Addr().Unmap()
	if !Trusted(addr, trusted) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr // a malformed entry ends what can be believed
		}
		addr = hop.Unmap()
		if !Trusted(addr, trusted) {
			return addr
		}
	}
	return addr
}

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

// ClientIP is the address of the client: the direct peer, or, when that
// peer is a trusted proxy, the right-most X-Forwarded-For entry that is
// not itself a trusted proxy (entries further left are the client's word).
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := peer.Addr().Unmap()
	if !IPPolicy(trusted).Permits(addr) || len(trusted) == 0 {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr // a malformed entry ends what can be believed
		}
		addr = hop.Unmap()
		if !IPPolicy(trusted).Permits(addr) {
			return addr
		}
	}
	return addr
}

// Package netguard keeps requests that an upstream steers (redirect hops)
// off the relay's own network: loopback, link-local (cloud metadata at
// 169.254.169.254), private, shared (CGNAT), unspecified, multicast and
// reserved addresses. The check runs as the socket connects, on the address
// the resolver returned, so a name that resolves to a public address when
// checked and to a private one when dialled (DNS rebinding) gains nothing.
package netguard

import (
	"fmt"
	"net/netip"
	"strings"
)

// Reasons an address is not public, as Classify reports them.
const (
	Loopback    = "loopback"
	Private     = "private"
	LinkLocal   = "link-local"
	Unspecified = "unspecified"
	Multicast   = "multicast"
	Reserved    = "reserved"
	Invalid     = "invalid"
)

// special lists the ranges netip's predicates do not name, with why each
// is refused (IANA IPv4 and IPv6 Special-Purpose Address Registries).
var special = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), Unspecified},    // "this network"
	{netip.MustParsePrefix("100.64.0.0/10"), Private},    // shared address space; 100.100.100.200 is a metadata service
	{netip.MustParsePrefix("192.0.0.0/24"), Reserved},    // IETF protocol assignments
	{netip.MustParsePrefix("192.0.2.0/24"), Reserved},    // documentation
	{netip.MustParsePrefix("192.88.99.0/24"), Reserved},  // 6to4 relay anycast
	{netip.MustParsePrefix("198.18.0.0/15"), Reserved},   // benchmarking
	{netip.MustParsePrefix("198.51.100.0/24"), Reserved}, // documentation
	{netip.MustParsePrefix("203.0.113.0/24"), Reserved},  // documentation
	{netip.MustParsePrefix("240.0.0.0/4"), Reserved},     // future use, and 255.255.255.255
	{netip.MustParsePrefix("::/96"), Reserved},           // IPv4-compatible (deprecated)
	{netip.MustParsePrefix("64:ff9b:1::/48"), Private},   // local-use NAT64
	{netip.MustParsePrefix("100::/64"), Reserved},        // discard-only
	{netip.MustParsePrefix("2001::/23"), Reserved},       // IETF protocol assignments, Teredo included
	{netip.MustParsePrefix("2001:db8::/32"), Reserved},   // documentation
	{netip.MustParsePrefix("3fff::/20"), Reserved},       // documentation
	{netip.MustParsePrefix("5f00::/16"), Reserved},       // segment routing SIDs
	{netip.MustParsePrefix("fec0::/10"), Private},        // site-local (deprecated)
	{netip.MustParsePrefix("2002::/16"), ""},             // 6to4: judged by the embedded IPv4 address
	{netip.MustParsePrefix("64:ff9b::/96"), ""},          // NAT64: judged by the embedded IPv4 address
	{netip.MustParsePrefix("2000::/3"), ""},              // global unicast
	{netip.MustParsePrefix("::/0"), Reserved},            // the rest of IPv6 is unassigned
	{netip.MustParsePrefix("0.0.0.0/0"), ""},             // the rest of IPv4
}

// Classify returns why a is not a public unicast address, or "" when it
// is one. IPv4-mapped IPv6 addresses are judged as the IPv4 address they
// carry, and so are NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses.
func Classify(a netip.Addr) string {
	if !a.IsValid() {
		return Invalid
	}
	a = a.WithZone("").Unmap()
	switch {
	case a.IsUnspecified():
		return Unspecified
	case a.IsLoopback():
		return Loopback
	case a.IsLinkLocalUnicast():
		return LinkLocal
	case a.IsMulticast():
		return Multicast
	case a.IsPrivate():
		return Private
	}
	for _, s := range special {
		if !s.prefix.Contains(a) {
			continue
		}
		if v4, ok := embeddedIPv4(a, s.prefix); ok {
			return Classify(v4)
		}
		return s.reason
	}
	return ""
}

// embeddedIPv4 extracts the IPv4 address that a NAT64 or 6to4 address
// reaches.
func embeddedIPv4(a netip.Addr, p netip.Prefix) (netip.Addr, bool) {
	b := a.As16()
	switch p.String() {
	case "64:ff9b::/96":
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case "2002::/16":
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// IsPublic reports whether a is a public unicast address that a redirect
// may lead the relay to.
func IsPublic(a netip.Addr) bool { return Classify(a) == "" }

// RefusedError is a connection the guard did not allow.
type RefusedError struct {
	// Host is the name the request used, when it was not the address.
	Host string
	// Addr is the refused address; invalid when Host alone was refused
	// ("localhost").
	Addr   netip.Addr
	Reason string
}

func (e *RefusedError) Error() string {
	switch {
	case !e.Addr.IsValid():
		return fmt.Sprintf("%s is not a public address (%s)", e.Host, e.Reason)
	case e.Host != "" && e.Host != e.Addr.String():
		return fmt.Sprintf("%s resolves to %s, which is not a public address (%s)", e.Host, e.Addr, e.Reason)
	}
	return fmt.Sprintf("%s is not a public address (%s)", e.Addr, e.Reason)
}

// CheckHost refuses, without any lookup, a URL host (as url.URL.Hostname
// returns it) that is a non-public IP literal or a localhost name (RFC
// 6761). A trailing dot changes nothing ("127.0.0.1." is 127.0.0.1), and
// a host whose last label is a number but which is no dotted-quad IPv4
// literal ("2130706433", "127.1", "0x7f.0.0.1", "0177.0.0.1") is refused
// too: no DNS name ends in a number, and resolvers and clients read such
// hosts as IPv4 addresses in ways netip does not. Names that need
// resolving pass: the dial-time check judges them.
func CheckHost(host string) error {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return &RefusedError{Host: host, Reason: Loopback}
	}
	// A literal parses as it is (an IPv6 zone may end in a dot) or with
	// its trailing dot trimmed ("127.0.0.1.").
	lit := unbracket(host)
	a, err := netip.ParseAddr(lit)
	if err != nil {
		a, err = netip.ParseAddr(strings.TrimSuffix(lit, "."))
	}
	if err != nil {
		if numericHost(h) {
			return &RefusedError{Host: host, Reason: Invalid}
		}
		return nil
	}
	if r := Classify(a); r != "" {
		return &RefusedError{Addr: a, Reason: r}
	}
	return nil
}

// unbracket drops the one pair of brackets around an IPv6 literal; a
// bracket inside (a zone may hold any byte) stays.
func unbracket(host string) string {
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		return host[1 : len(host)-1]
	}
	return host
}

// numericHost reports whether h's last label is a decimal, octal or hex
// number, as inet_aton's shorthand forms are.
func numericHost(h string) bool {
	last := h[strings.LastIndex(h, ".")+1:]
	if rest, ok := strings.CutPrefix(last, "0x"); ok {
		last = rest
		return last == "" || strings.Trim(last, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

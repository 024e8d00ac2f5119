package netguard

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// hop marks a request that must only reach public addresses. It records
// the proxy the request was sent through, whose address is the operator's
// choice and is dialled unchecked.
type hop struct {
	proxyAddr atomic.Pointer[string]
}

type hopKey struct{}

// proxyDialKey marks a dial to the proxy of a public-only request.
type proxyDialKey struct{}

// PublicOnly returns a context whose requests, through a transport built
// with DialContext and Proxy, connect only to public addresses. The
// transport keeps the values of a request's context for its dials.
func PublicOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, hopKey{}, &hop{})
}

func hopFrom(ctx context.Context) *hop {
	h, _ := ctx.Value(hopKey{}).(*hop)
	return h
}

// Control is a net.Dialer ControlContext that refuses to connect a
// public-only dial to a non-public address. It sees the resolved address
// of every connection attempt, so each address of a name is judged.
func Control(ctx context.Context, network, address string, _ syscall.RawConn) error {
	if hopFrom(ctx) == nil || ctx.Value(proxyDialKey{}) != nil {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Host: address, Reason: Invalid}
	}
	if r := Classify(ap.Addr()); r != "" {
		return &RefusedError{Addr: ap.Addr(), Reason: r}
	}
	return nil
}

// DialContext returns d's DialContext with Control installed (after any
// ControlContext d already has). A public-only dial to the proxy its
// request was sent through is not checked: Proxy checked the target.
func DialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	guarded := *d
	prev := d.ControlContext
	if prev == nil && d.Control != nil {
		control := d.Control
		prev = func(_ context.Context, network, address string, c syscall.RawConn) error {
			return control(network, address, c)
		}
	}
	guarded.Control = nil
	guarded.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		if err := Control(ctx, network, address, c); err != nil {
			return err
		}
		if prev != nil {
			return prev(ctx, network, address, c)
		}
		return nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if h := hopFrom(ctx); h != nil {
			if p := h.proxyAddr.Load(); p != nil && *p == addr {
				ctx = context.WithValue(ctx, proxyDialKey{}, true)
			}
		}
		return guarded.DialContext(ctx, network, addr)
	}
}

// lookupTimeout bounds Proxy's lookup of a proxied target.
const lookupTimeout = 5 * time.Second

// Proxy wraps a Transport's Proxy function (http.ProxyFromEnvironment).
// A public-only request sent through a proxy reaches its target via the
// proxy's resolver, not the relay's dial, so its target is checked here:
// non-public literals and names that resolve to any non-public address are
// refused. A name the relay cannot resolve is left to the proxy, whose own
// policy is then the last word (docs/security.md).
func Proxy(next func(*http.Request) (*url.URL, error)) func(*http.Request) (*url.URL, error) {
	return func(req *http.Request) (*url.URL, error) {
		u, err := next(req)
		h := hopFrom(req.Context())
		if err != nil || u == nil || h == nil {
			return u, err
		}
		host := req.URL.Hostname()
		if err := CheckHost(host); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(req.Context(), lookupTimeout)
		defer cancel()
		if addrs, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", host); lerr == nil {
			for _, a := range addrs {
				if r := Classify(a); r != "" {
					return nil, &RefusedError{Host: host, Addr: a, Reason: r}
				}
			}
		}
		addr := proxyAddr(u)
		h.proxyAddr.Store(&addr)
		return u, nil
	}
}

// proxyAddr is the address net/http dials for proxy u.
func proxyAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}[strings.ToLower(u.Scheme)]
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// ResolvesPublic reports whether host (a URL hostname) is public: a
// public literal, or a name whose every address is public. It is for
// deciding whether an operator pointed a route at its own network, not for
// guarding a connection (use PublicOnly for that).
func ResolvesPublic(ctx context.Context, r *net.Resolver, host string) (bool, error) {
	if CheckHost(host) != nil {
		return false, nil
	}
	if _, err := netip.ParseAddr(unbracket(host)); err == nil {
		return true, nil
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return true, err
	}
	for _, a := range addrs {
		if !IsPublic(a) {
			return false, nil
		}
	}
	return true, nil
}

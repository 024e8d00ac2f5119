package peers

import (
	"context"
	"net"
	"slices"
	"time"
)

// Lookup resolves a host name to its addresses, as net.Resolver's
// LookupHost does; tests pass their own.
type Lookup func(ctx context.Context, host string) ([]string, error)

// Discover keeps r's peers to the addresses that name (a Kubernetes
// headless Service, "registry-relay-peers.ns.svc:8080") resolves to,
// looked up every interval until ctx ends. A failed lookup keeps the
// fleet as it was: a DNS hiccup must not split it. report, if not nil, is
// told of each change and each failure.
func Discover(ctx context.Context, r *Ring, name, scheme string, every time.Duration, lookup Lookup, report func([]string, error)) {
	host, port, err := net.SplitHostPort(name)
	if err != nil {
		if report != nil {
			report(nil, err)
		}
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if peers, err := resolve(ctx, lookup, host, port, scheme); err != nil {
			if report != nil {
				report(nil, err)
			}
		} else if !slices.Equal(withSelf(peers, r.self), r.Peers()) {
			if err := r.SetPeers(peers); err == nil && report != nil {
				report(r.Peers(), nil)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func resolve(ctx context.Context, lookup Lookup, host, port, scheme string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, scheme+"://"+net.JoinHostPort(a, port))
	}
	slices.Sort(out)
	return out, nil
}

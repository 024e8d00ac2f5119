package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"

	"github.com/registry-relay/registry-relay/internal/metrics"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// fallbackTransport retries a failed GET/HEAD on the route's fallback
// upstream (FALLBACK_REGISTRY_MAP). It decides on the primary's response
// headers, so nothing has reached the client yet. Only outages count:
// connection errors, timeouts, 5xx and 429 — never 401, 403 or 404, which
// are answers, not failures.
type fallbackTransport struct {
	route   *registry.Route   // whose Fallback is tried
	primary http.RoundTripper // the redirect follower
	// secondary reaches fallbacks with the relay's own token flow: the
	// client's token was issued for the primary's realm.
	secondary http.RoundTripper
	metrics   *metrics.Metrics
	log       *slog.Logger
}

var _ http.RoundTripper = (*fallbackTransport)(nil)

func (t *fallbackTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.primary.RoundTrip(req)
	fallback := t.route.Fallback
	if fallback == nil || req.Context().Err() != nil {
		return resp, err
	}
	reason := fallbackReason(resp, err)
	if reason == "" {
		return resp, err
	}
	if resp != nil {
		discard(resp)
	}
	t.metrics.Fallback(t.route.Name, reason)
	t.log.WarnContext(req.Context(), "primary upstream failed; trying the fallback",
		"route", t.route.Name, "reason", reason, "fallback", fallback.Host, "err", err)
	freq := req.Clone(req.Context())
	freq.URL.Scheme, freq.URL.Host, freq.Host = fallback.Scheme, fallback.Host, ""
	freq.Header.Del("Authorization")
	fresp, ferr := t.secondary.RoundTrip(freq)
	if ferr == nil && (fresp.StatusCode == http.StatusUnauthorized || fresp.StatusCode == http.StatusForbidden) {
		discard(fresp)
		return nil, fmt.Errorf("fallback %s refused anonymous access (%d) after the primary failed (%s)",
			fallback.Host, fresp.StatusCode, reason)
	}
	return fresp, ferr
}

// fallbackReason names why the primary's answer calls for the fallback,
// or returns "" when it does not: a small fixed set, used as a label.
func fallbackReason(resp *http.Response, err error) string {
	var ne net.Error
	switch {
	case err != nil && (errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())):
		return "timeout"
	case err != nil:
		var re *redirectError
		if errors.As(err, &re) {
			return "" // a policy refusal, not an outage
		}
		return "error"
	case resp.StatusCode == http.StatusTooManyRequests:
		return "429"
	case resp.StatusCode >= 500:
		return "5xx"
	}
	return ""
}

// authHostsOf lists the realm hosts a fallback at u may name besides its
// own origin: the auth hosts of the routes whose upstream it is, and of the
// built-in registry it is (a fallback to registry-1.docker.io brings
// auth.docker.io even when the Docker Hub route points elsewhere).
func (rl *Relay) authHostsOf(u *url.URL) []string {
	var hosts []string
	for _, r := range rl.routeByName {
		if registry.SameOrigin(r.Upstream, u) {
			hosts = append(hosts, r.AuthHosts...)
		}
	}
	for _, b := range registry.Builtins {
		if up, err := url.Parse(b.Upstream); err == nil && registry.SameOrigin(up, u) {
			hosts = append(hosts, b.AuthHosts...)
		}
	}
	return hosts
}

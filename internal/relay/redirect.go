package relay

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/registry-relay/registry-relay/internal/httpbody"
	"github.com/registry-relay/registry-relay/internal/oci"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// redirectFollower follows upstream redirects by hand for relayed
// GET/HEAD requests, so the client receives the bytes from wherever the
// upstream stores them (CDN, S3, GCS, Artifact Registry). Unlike Go's
// client it drops Authorization on every hop that leaves the upstream's
// exact host: signed CDN URLs reject it, and subdomains are not trusted.
//
// A hop leads wherever the upstream's Location says, so unless the
// upstream itself is on the operator's own network, hops may only connect
// to public addresses (internal/netguard); they go through public, their
// own connection pool, so that they never reuse a connection that was
// dialled unchecked.
//
// A follower serves one route, which it is built with: what the route
// trusts (its upstream, fallback and credential hosts) decides where
// credentials go and whose challenges count, and nothing a request
// carries can change that.
type redirectFollower struct {
	route     *registry.Route
	guard     *hopGuard
	max       int
	passBlobs bool
}

// newRedirectFollower follows route's redirects through g.
func newRedirectFollower(route *registry.Route, g *hopGuard, maxRedirects int, passBlobs bool) *redirectFollower {
	return &redirectFollower{route: route, guard: g, max: maxRedirects, passBlobs: passBlobs}
}

var _ http.RoundTripper = (*redirectFollower)(nil)

// redirectError is a redirect the relay refused to follow.
type redirectError struct{ reason string }

func (e *redirectError) Error() string { return "upstream redirect refused: " + e.reason }

func (t *redirectFollower) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return nil, fmt.Errorf("the relay sends only GET and HEAD upstream, not %s", req.Method)
	}
	pol := t.policy(req)
	origin := req.URL
	kind := upstreamKind(origin)
	resp, err := t.guard.send(req, pol.steered, pol)
	if err != nil {
		return nil, err
	}
	for hops := 0; isRedirect(resp.StatusCode); hops++ {
		loc, lerr := req.URL.Parse(resp.Header.Get("Location"))
		if lerr != nil || resp.Header.Get("Location") == "" {
			return resp, nil // a broken redirect is the upstream's answer; pass it on
		}
		if err := checkLocation(req.URL, loc); err != nil {
			discard(resp)
			return nil, err
		}
		keep := t.route.KeepsCredentials(loc)
		if t.passBlobs && kind == oci.KindBlob && !keep {
			// The first hop to storage goes to the client, absolute so
			// that it is not resolved against the relay's host, and only
			// where the relay itself would have gone. Hops that still
			// need the client's token (lscr.io -> ghcr.io) or stay on the
			// upstream are followed here.
			if pol.publicOnly() {
				if err := t.guard.checkPassed(req.Context(), loc); err != nil {
					discard(resp)
					return nil, err
				}
			}
			resp.Header.Set("Location", loc.String())
			return resp, nil
		}
		discard(resp)
		if hops >= t.max {
			return nil, &redirectError{fmt.Sprintf("more than %d redirects", t.max)}
		}
		req = nextHop(req, loc, keep)
		if resp, err = t.guard.send(req, true, pol); err != nil {
			return nil, err
		}
	}
	if req.URL != origin && !t.route.SpeaksFor(req.URL) {
		disown(resp, kind)
	}
	return resp, nil
}

// upstreamKind is the endpoint family of a request the relay sends: the
// path is the relay's own, parsed at the edge, so it parses.
func upstreamKind(u *url.URL) oci.Kind {
	p, _ := oci.ParsePath(u.EscapedPath())
	return p.Kind
}

// disown strips what only the upstream itself may say from an answer that
// came from a host a redirect led to (a CDN, object storage): its
// challenges would teach the relay a token realm, and its error body is
// not the registry's. Successful answers pass as they are.
func disown(resp *http.Response, kind oci.Kind) {
	resp.Header.Del("WWW-Authenticate")
	if resp.StatusCode >= 400 {
		replaceError(resp, kind, "storage host "+resp.Request.URL.Host+" answered "+
			strconv.Itoa(resp.StatusCode)+" "+http.StatusText(resp.StatusCode))
	}
}

// checkLocation refuses non-HTTP schemes, https to http downgrades and
// hostless or credentialed Locations, whether the relay follows them or
// hands them to the client: a manifest fetched by tag has no digest to
// check, so its transport must stay as safe as the upstream's.
func checkLocation(from, to *url.URL) error {
	switch {
	case to.Scheme != "http" && to.Scheme != "https":
		return &redirectError{fmt.Sprintf("scheme %q is not http(s)", to.Scheme)}
	case from.Scheme == "https" && to.Scheme == "http":
		return &redirectError{"https upstream redirected to plain http " + to.Host}
	case to.Host == "" || to.Hostname() == "":
		return &redirectError{"redirect without a host"}
	case to.User != nil:
		return &redirectError{"redirect with credentials in the URL"}
	}
	return nil
}

// nextHop clones req for loc, keeping Accept, Range, If-* and the like.
func nextHop(req *http.Request, loc *url.URL, keepCredentials bool) *http.Request {
	next := req.Clone(req.Context())
	next.URL, next.Host = loc, ""
	if !keepCredentials {
		next.Header.Del("Authorization")
		next.Header.Del("Cookie")
	}
	return next
}

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// discard drains and closes an unwanted body (httpbody.Drain).
func discard(resp *http.Response) { httpbody.Drain(resp.Body) }

package relay

import (
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/registry-relay/registry-relay/internal/oci"
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
type redirectFollower struct {
	next      http.RoundTripper
	public    http.RoundTripper
	origins   *origins
	max       int
	passBlobs bool
}

// newRedirectFollower follows redirects over next; public-only hops use a
// clone of next when it is an *http.Transport (see publicHops).
func newRedirectFollower(next http.RoundTripper, maxRedirects int, passBlobs bool, public http.RoundTripper) *redirectFollower {
	if public == nil {
		public = next
	}
	return &redirectFollower{next: next, public: public, origins: newOrigins(), max: maxRedirects, passBlobs: passBlobs}
}

var _ http.RoundTripper = (*redirectFollower)(nil)

// redirectError is a redirect the relay refused to follow.
type redirectError struct{ reason string }

func (e *redirectError) Error() string { return "upstream redirect refused: " + e.reason }

func (t *redirectFollower) RoundTrip(req *http.Request) (*http.Response, error) {
	x := exchangeFrom(req.Context())
	if x == nil || x.route == nil || (req.Method != http.MethodGet && req.Method != http.MethodHead) {
		return t.next.RoundTrip(req)
	}
	pol := t.policy(req, x)
	resp, err := t.send(req, pol.steered, pol)
	if err != nil {
		return nil, err
	}
	for hops := 0; isRedirect(resp.StatusCode); hops++ {
		loc, lerr := req.URL.Parse(resp.Header.Get("Location"))
		if lerr != nil || resp.Header.Get("Location") == "" {
			return resp, nil // a broken redirect is the upstream's answer; pass it on
		}
		keep := x.route.KeepsCredentials(loc)
		if t.passBlobs && x.kind == oci.KindBlob && !keep {
			// The first hop to storage goes to the client, absolute so
			// that it is not resolved against the relay's host. Hops that
			// still need the client's token (lscr.io -> ghcr.io) or stay
			// on the upstream are followed here.
			resp.Header.Set("Location", loc.String())
			return resp, nil
		}
		discard(resp)
		if err := t.allowed(req.URL, loc, hops); err != nil {
			return nil, err
		}
		req = nextHop(req, loc, keep)
		if resp, err = t.send(req, true, pol); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// allowed refuses redirect loops, non-HTTP schemes, and https to http
// downgrades: a manifest fetched by tag has no digest to check, so its
// transport must stay as safe as the upstream's.
func (t *redirectFollower) allowed(from, to *url.URL, hops int) error {
	switch {
	case hops >= t.max:
		return &redirectError{fmt.Sprintf("more than %d redirects", t.max)}
	case to.Scheme != "http" && to.Scheme != "https":
		return &redirectError{fmt.Sprintf("scheme %q is not http(s)", to.Scheme)}
	case from.Scheme == "https" && to.Scheme == "http":
		return &redirectError{"https upstream redirected to plain http " + to.Host}
	case to.Host == "":
		return &redirectError{"redirect without a host"}
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

// discard drains a little of an unwanted body so the connection can be
// reused, then closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
}

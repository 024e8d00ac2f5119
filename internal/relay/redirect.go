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
type redirectFollower struct {
	next      http.RoundTripper
	max       int
	passBlobs bool
}

var _ http.RoundTripper = (*redirectFollower)(nil)

// redirectError is a redirect the relay refused to follow.
type redirectError struct{ reason string }

func (e *redirectError) Error() string { return "upstream redirect refused: " + e.reason }

func (t *redirectFollower) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	x := exchangeFrom(req.Context())
	if err != nil || x == nil || x.route == nil || (req.Method != http.MethodGet && req.Method != http.MethodHead) {
		return resp, err
	}
	for hops := 0; isRedirect(resp.StatusCode); hops++ {
		loc, lerr := req.URL.Parse(resp.Header.Get("Location"))
		if lerr != nil || resp.Header.Get("Location") == "" {
			return resp, nil // a broken redirect is the upstream's answer; pass it on
		}
		if t.passBlobs && x.kind == oci.KindBlob {
			// The client follows; it must not resolve a relative
			// Location against the relay's host.
			resp.Header.Set("Location", loc.String())
			return resp, nil
		}
		discard(resp)
		if hops >= t.max {
			return nil, &redirectError{fmt.Sprintf("more than %d redirects", t.max)}
		}
		if loc.Scheme != "http" && loc.Scheme != "https" {
			return nil, &redirectError{fmt.Sprintf("scheme %q is not http(s)", loc.Scheme)}
		}
		req = nextHop(req, loc, x.route.KeepsCredentials(loc))
		if resp, err = t.next.RoundTrip(req); err != nil {
			return nil, err
		}
	}
	return resp, nil
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

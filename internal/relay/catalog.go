package relay

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/registry-relay/registry-relay/internal/access"
	"github.com/registry-relay/registry-relay/internal/httpbody"
	"github.com/registry-relay/registry-relay/internal/oci"
)

// maxCatalogBytes bounds a _catalog page read for filtering; a page of
// distribution's default 100 names is a few KiB, its maximum of 1,000
// well under this.
const maxCatalogBytes = 4 << 20

// filterCatalog drops from a _catalog page the repositories the route's
// repository policy refuses: the relay does not serve them, so it does not
// list them either, nor name one in the next page's link (see
// filterCatalogLinks). A page may come back shorter than asked for, which
// the spec allows. A page that cannot be read or parsed is refused rather
// than passed unfiltered.
func filterCatalog(resp *http.Response, policy access.RoutePolicy) {
	if resp.StatusCode != http.StatusOK || (!policy.Closed && len(policy.Repos.Allow) == 0 && len(policy.Repos.Deny) == 0) {
		return
	}
	if resp.Request.Method == http.MethodHead {
		resp.Header.Del("Content-Length") // the filtered page's length is not known
		resp.ContentLength = -1
		return
	}
	raw, err := httpbody.Read(resp.Body, maxCatalogBytes)
	var page map[string]json.RawMessage
	var repos []string
	if err == nil && json.Unmarshal(raw, &page) == nil && json.Unmarshal(page["repositories"], &repos) == nil {
		kept := make([]string, 0, len(repos))
		for _, name := range repos {
			if policy.PermitsRepo(name) {
				kept = append(kept, name)
			}
		}
		page["repositories"], _ = json.Marshal(kept)
		body, _ := json.Marshal(page)
		resp.Body.Close()
		setBody(resp, body, "application/json; charset=utf-8")
		filterCatalogLinks(resp.Header, policy, kept)
		return
	}
	replaceAnswer(resp, oci.BadGateway(oci.CodeUnavailable, "upstream catalog page unreadable, oversized or not JSON"))
}

// filterCatalogLinks keeps a page's "next" link from naming a refused
// repository in its last= parameter: such a link moves on from the last
// permitted name instead (the next page repeats the refused ones, which
// are filtered again), and a page with no permitted name ends the listing.
func filterCatalogLinks(h http.Header, policy access.RoutePolicy, kept []string) {
	links := h.Values("Link")
	if len(links) == 0 {
		return
	}
	out := links[:0:0]
	for _, l := range links {
		open, close := strings.Index(l, "<"), strings.Index(l, ">")
		if open < 0 || close < open {
			continue // not a link the relay can vouch for
		}
		u, err := url.Parse(l[open+1 : close])
		if err != nil {
			continue
		}
		q := u.Query()
		if last := q.Get("last"); last != "" && !policy.PermitsRepo(last) {
			if len(kept) == 0 {
				continue
			}
			q.Set("last", kept[len(kept)-1])
			u.RawQuery = q.Encode()
		}
		out = append(out, l[:open+1]+u.String()+l[close:])
	}
	h.Del("Link")
	for _, l := range out {
		h.Add("Link", l)
	}
}

package relay

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/registry-relay/registry-relay/internal/access"
	"github.com/registry-relay/registry-relay/internal/oci"
)

// maxCatalogBytes bounds a _catalog page read for filtering; a page of
// distribution's default 100 names is a few KiB, its maximum of 1,000
// well under this.
const maxCatalogBytes = 4 << 20

// filterCatalog drops from a _catalog page the repositories the route's
// repository policy refuses: the relay does not serve them, so it does not
// list them either. Pagination (Link) is left as the upstream set it; a
// page may come back shorter than asked for, which the spec allows. A page
// that cannot be read or parsed is refused rather than passed unfiltered.
func filterCatalog(resp *http.Response, policy access.RepoPolicy) {
	if resp.StatusCode != http.StatusOK || (len(policy.Allow) == 0 && len(policy.Deny) == 0) {
		return
	}
	if resp.Request.Method == http.MethodHead {
		resp.Header.Del("Content-Length") // the filtered page's length is not known
		resp.ContentLength = -1
		return
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxCatalogBytes+1))
	var page map[string]json.RawMessage
	var repos []string
	if err == nil && len(raw) <= maxCatalogBytes && json.Unmarshal(raw, &page) == nil && json.Unmarshal(page["repositories"], &repos) == nil {
		kept := make([]string, 0, len(repos))
		for _, name := range repos {
			if policy.Permits(name) {
				kept = append(kept, name)
			}
		}
		page["repositories"], _ = json.Marshal(kept)
		body, _ := json.Marshal(page)
		resp.Body.Close()
		setBody(resp, body, "application/json; charset=utf-8")
		return
	}
	replaceAnswer(resp, oci.NewError(http.StatusBadGateway, oci.CodeUnavailable, "upstream catalog page unreadable, oversized or not JSON"))
}

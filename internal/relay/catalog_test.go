package relay_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

const upstreamCatalog = `{"repositories":["library/nginx","library/busybox","private/x"]}`

// catalogUpstream serves body as its _catalog page, with a Link to the
// next page and a declared length, to GET and HEAD alike.
func catalogUpstream(t *testing.T, body string) *relaytest.Recorder {
	t.Helper()
	return relaytest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/_catalog" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("Link", `</v2/_catalog?last=private%2Fx&n=3>; rel="next"`)
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte(body))
		}
	})
}

// TestCatalogListsOnlyPermittedRepositories: _catalog pages are filtered
// by the route's repository policy, on the route and the mirror host; a
// route without a policy passes them unchanged.
func TestCatalogListsOnlyPermittedRepositories(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy map[string]string
		want   []string
		// wantLink is the next-page link, which never names a refused
		// repository: it moves on from the last permitted one, or is gone.
		wantLink string
	}{
		{"deny", map[string]string{"DOCKERHUB_DENY_REPOS": "library/busybox"}, []string{"library/nginx", "private/x"},
			`</v2/_catalog?last=private%2Fx&n=3>; rel="next"`},
		{"allow", map[string]string{"DOCKERHUB_ALLOW_REPOS": "library/*"}, []string{"library/nginx", "library/busybox"},
			`</v2/_catalog?last=library%2Fbusybox&n=3>; rel="next"`},
		{"allow and deny", map[string]string{"DOCKERHUB_ALLOW_REPOS": "library/*", "DOCKERHUB_DENY_REPOS": "library/busybox"}, []string{"library/nginx"},
			`</v2/_catalog?last=library%2Fnginx&n=3>; rel="next"`},
		{"allow none listed", map[string]string{"DOCKERHUB_ALLOW_REPOS": "bitnami/*"}, []string{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := catalogUpstream(t, upstreamCatalog)
			env := hubEnv(up.URL)
			for k, v := range tc.policy {
				env[k] = v
			}
			relay, _ := startRelay(t, env)
			for _, host := range []string{hubHost, mirrorHost} {
				resp := callWithin(t, relay, http.MethodGet, host, "/v2/_catalog?n=3", nil, nil)
				body := readAll(t, resp)
				var page struct {
					Repositories []string `json:"repositories"`
				}
				if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &page) != nil {
					t.Fatalf("%s: got %d %q, want 200 with a catalog page", host, resp.StatusCode, body)
				}
				if !slices.Equal(page.Repositories, tc.want) || page.Repositories == nil {
					t.Errorf("%s: repositories %q (body %s), want %q", host, page.Repositories, body, tc.want)
				}
				if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
					t.Errorf("%s: Content-Length %s for a %d-byte page", host, cl, len(body))
				}
				if link := resp.Header.Get("Link"); link != tc.wantLink {
					t.Errorf("%s: pagination Link %q, want %q", host, link, tc.wantLink)
				}
			}
		})
	}

	t.Run("no policy", func(t *testing.T) {
		up := catalogUpstream(t, upstreamCatalog)
		relay, _ := startRelay(t, hubEnv(up.URL))
		for _, host := range []string{hubHost, mirrorHost} {
			resp := callWithin(t, relay, http.MethodGet, host, "/v2/_catalog", nil, nil)
			if body := readAll(t, resp); resp.StatusCode != http.StatusOK || string(body) != upstreamCatalog {
				t.Errorf("%s: got %d %q, want the upstream's page unchanged", host, resp.StatusCode, body)
			}
			resp = callWithin(t, relay, http.MethodHead, host, "/v2/_catalog", nil, nil)
			readAll(t, resp)
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(upstreamCatalog)) {
				t.Errorf("%s: HEAD Content-Length %q, want the upstream's %d", host, cl, len(upstreamCatalog))
			}
		}
	})
}

// TestCatalogUnderPolicyNeverPassesUnfiltered: a page the relay cannot
// filter is refused rather than passed on, and a HEAD does not announce
// the length of the unfiltered page.
func TestCatalogUnderPolicyNeverPassesUnfiltered(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"not JSON", "library/busybox\nlibrary/nginx\n"},
		{"repositories not a list", `{"repositories":"library/busybox"}`},
		{"truncated", `{"repositories":["library/busybox",`},
		{"oversized", `{"repositories":["library/busybox"],"pad":"` + strings.Repeat("x", 5<<20) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := catalogUpstream(t, tc.body)
			env := hubEnv(up.URL)
			env["DOCKERHUB_DENY_REPOS"] = "library/busybox"
			relay, _ := startRelay(t, env)
			resp := callWithin(t, relay, http.MethodGet, hubHost, "/v2/_catalog", nil, nil)
			if resp.StatusCode != http.StatusOK {
				wantOCIError(t, resp, http.StatusBadGateway, "UNAVAILABLE")
				return
			}
			body := readAll(t, resp)
			t.Errorf("got 200 with %d bytes (%.100q), want 502", len(body), body)
		})
	}

	t.Run("HEAD", func(t *testing.T) {
		up := catalogUpstream(t, upstreamCatalog)
		env := hubEnv(up.URL)
		env["DOCKERHUB_DENY_REPOS"] = "library/busybox"
		relay, _ := startRelay(t, env)
		for _, host := range []string{hubHost, mirrorHost} {
			resp := callWithin(t, relay, http.MethodHead, host, "/v2/_catalog", nil, nil)
			readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: HEAD got %d, want 200", host, resp.StatusCode)
			}
			if cl, ok := resp.Header["Content-Length"]; ok {
				t.Errorf("%s: HEAD carries Content-Length %q, the unfiltered page's", host, cl)
			}
			if up.Last(t).Method != http.MethodHead {
				t.Errorf("%s: the upstream saw %s, want HEAD", host, up.Last(t).Method)
			}
		}
	})
}

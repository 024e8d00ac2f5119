package relay_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// chainUpstream answers /v2/library/chain<n>/… with a chain of exactly n
// redirects for a GET, each to a distinct path on the same server
// (/hop/<n>/1 … /hop/<n>/n), the last of which serves body. It records
// the hops it saw.
type chainUpstream struct {
	srv  *httptest.Server
	body []byte
	mu   sync.Mutex
	hops map[string]bool
}

func newChainUpstream(t *testing.T, body []byte) *chainUpstream {
	t.Helper()
	u := &chainUpstream{body: body, hops: map[string]bool{}}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *chainUpstream) serve(w http.ResponseWriter, r *http.Request) {
	var n, i int
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v2/library/chain"); ok {
		n, _ = strconv.Atoi(rest[:strings.Index(rest, "/")])
	} else if _, err := fmt.Sscanf(r.URL.Path, "/hop/%d/%d", &n, &i); err != nil {
		http.NotFound(w, r)
		return
	} else {
		u.mu.Lock()
		u.hops[r.URL.Path] = true
		u.mu.Unlock()
	}
	// HEADs are answered where they land, as many registries do: a
	// cache's authorization check then passes, and the bound under test
	// is the fill's own.
	if i < n && r.Method == http.MethodGet {
		w.Header().Set("Location", fmt.Sprintf("/hop/%d/%d", n, i+1))
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(u.body)))
	if r.Method == http.MethodGet {
		_, _ = w.Write(u.body)
	}
}

func (u *chainUpstream) saw(path string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hops[path]
}

// TestMaxRedirectsIsExact: RELAY_MAX_REDIRECTS=n follows a chain of
// exactly n redirects and refuses one of n+1 without contacting its last
// target; 0 refuses the first redirect. Blobs through the proxy and
// through a cache fill, and manifests by tag, all keep the bound.
func TestMaxRedirectsIsExact(t *testing.T) {
	blob := []byte("the blob at the end of the chain")
	digest := sha256Digest(blob)
	for _, setup := range []struct {
		name  string
		cache bool
	}{{"proxy", false}, {"cache", true}} {
		for _, tc := range []struct {
			max, chain int
			followed   bool
		}{
			{3, 0, true}, {3, 1, true}, {3, 3, true}, {3, 4, false}, {3, 7, false},
			{0, 0, true}, {0, 1, false},
			{1, 1, true}, {1, 2, false},
		} {
			name := fmt.Sprintf("%s/max %d/chain %d", setup.name, tc.max, tc.chain)
			t.Run(name, func(t *testing.T) {
				up := newChainUpstream(t, blob)
				env := hubEnv(up.srv.URL)
				if setup.cache {
					env = cacheEnv(t, up.srv.URL, t.TempDir())
				}
				env["RELAY_MAX_REDIRECTS"] = strconv.Itoa(tc.max)
				relay, _ := startRelay(t, env)
				for _, path := range []string{
					fmt.Sprintf("/v2/library/chain%d/blobs/%s", tc.chain, digest),
					fmt.Sprintf("/v2/library/chain%d/manifests/latest", tc.chain),
				} {
					resp := callWithin(t, relay, http.MethodGet, hubHost, path, nil, nil)
					if !tc.followed {
						msg := wantOCIError(t, resp, http.StatusBadGateway, "UNAVAILABLE")
						if want := fmt.Sprintf("more than %d redirects", tc.max); !strings.Contains(msg, want) {
							t.Errorf("%s: message %q does not say %q", path, msg, want)
						}
						continue
					}
					if body := readAll(t, resp); resp.StatusCode != http.StatusOK || !bytes.Equal(body, blob) {
						t.Errorf("%s: got %d %q, want 200 with the blob", path, resp.StatusCode, body)
					}
					if c := resp.Header.Get("X-Relay-Cache"); setup.cache && strings.Contains(path, "/blobs/") && c != "miss" {
						t.Errorf("%s: X-Relay-Cache %q, want miss (a cache fill)", path, c)
					}
				}
				if past := fmt.Sprintf("/hop/%d/%d", tc.chain, tc.max+1); !tc.followed && up.saw(past) {
					t.Errorf("the relay contacted %s, a redirect past the bound", past)
				}
			})
		}
	}
}
